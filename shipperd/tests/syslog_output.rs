//! The syslog-over-TLS output against receivers that misbehave on purpose, in process: the
//! frames on the wire, and what a batch counts as when the receiver hangs up on it.

use std::time::Duration;

use sec_tracker_proto::config::SyslogOutputConfig;
use sec_tracker_proto::Config;
use sec_tracker_testkit::server::{server_tls, TestCa};
use shipperd::outputs::syslog::SyslogOutput;
use shipperd::sender::Outcome;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "seq": i + 1, "stream_id": "s", "timestamp": "2026-12-01T10:20:30.5Z",
                "type": "process", "severity": if i % 2 == 0 { "INFO" } else { "CRITICAL" },
                "message": format!("event {i} with a newline\nand \u{1F600} in it"),
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

/// Splits RFC 5425 octet-counted frames; panics on a malformed one.
fn frames(mut data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .expect("a length and a space");
        let len: usize = std::str::from_utf8(&data[..sp]).unwrap().parse().unwrap();
        let msg = &data[sp + 1..sp + 1 + len];
        out.push(String::from_utf8(msg.to_vec()).unwrap());
        data = &data[sp + 1 + len..];
    }
    out
}

struct Setup {
    output: SyslogOutput,
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

async fn setup() -> Setup {
    let ca = TestCa::new();
    let cert = ca.localhost_cert();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    ca.write_ca_pem(&ca_path).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::default();
    config.agent.id = "host-1".into();
    let c = SyslogOutputConfig {
        address: format!("localhost:{port}"),
        ca_file: Some(ca_path),
        timeout: Duration::from_secs(5),
        confirm_after: Duration::from_millis(300),
        ..Default::default()
    };
    let output = SyslogOutput::new(&c, &config).unwrap();
    Setup {
        output,
        listener,
        acceptor: TlsAcceptor::from(server_tls(&cert, None).unwrap()),
    }
}

#[tokio::test]
async fn a_receiver_that_hangs_up_on_a_batch_gets_it_again_on_the_next_connection() {
    let Setup {
        output,
        listener,
        acceptor,
    } = setup().await;
    let batch = payloads(200);
    let refs: Vec<&[u8]> = batch.iter().map(|p| p.as_slice()).collect();
    let receiver = tokio::spawn(async move {
        // First connection: read a little of the batch, then close with the rest unread (the
        // kernel answers it with a reset), as a receiver that crashes or restarts does.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut some = [0u8; 100];
        tls.read_exact(&mut some).await.unwrap();
        drop(tls);
        // Second: read everything, keep the connection open.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while frames_complete(&got) < 200 {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "the sender closed early");
            got.extend_from_slice(&buf[..n]);
        }
        (got, tls)
    });
    let first = output.send_batch(&refs).await;
    assert!(
        matches!(&first, Outcome::Retry { reason, .. } if reason.contains("sent again")),
        "a batch the receiver hung up on counted as delivered: {first:?}"
    );
    let second = output.send_batch(&refs).await;
    assert_eq!(second, Outcome::Delivered);
    let (got, _open) = receiver.await.unwrap();
    let messages = frames(&got);
    assert_eq!(messages.len(), 200);
    // authpriv * 8 + info (6) / crit (2); the message's JSON intact (its newline escaped).
    assert!(
        messages[0].starts_with(
            "<86>1 2026-12-01T10:20:30.500000Z host-1 sec-tracker - process - {\"seq\":1,"
        ),
        "{}",
        messages[0]
    );
    assert!(messages[1].starts_with("<82>1 "), "{}", messages[1]);
    for m in &messages {
        let json = m.splitn(8, ' ').nth(7).unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert!(v["message"].as_str().unwrap().contains('\n'));
        assert!(!m.contains('\n'));
    }
}

fn frames_complete(mut data: &[u8]) -> usize {
    let mut n = 0;
    loop {
        let Some(sp) = data.iter().position(|&b| b == b' ') else {
            return n;
        };
        let Ok(len) = std::str::from_utf8(&data[..sp])
            .unwrap_or("x")
            .parse::<usize>()
        else {
            return n;
        };
        if data.len() < sp + 1 + len {
            return n;
        }
        n += 1;
        data = &data[sp + 1 + len..];
    }
}

#[tokio::test]
async fn a_stalled_receiver_times_out_and_the_batch_is_kept() {
    let Setup {
        output,
        listener,
        acceptor,
    } = setup().await;
    let _receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        // Never read: the sender's buffers fill and its write cannot finish.
        std::future::pending::<()>().await;
        drop(tls);
    });
    // Enough to fill both sides' socket buffers.
    let big: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            format!(
                "{{\"seq\":{i},\"type\":\"file\",\"message\":\"{}\"}}",
                "x".repeat(32 * 1024)
            )
            .into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = big.iter().map(|p| p.as_slice()).collect();
    let outcome = output.send_batch(&refs).await;
    assert!(
        matches!(&outcome, Outcome::Retry { reason, .. } if reason.contains("stalled")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_receiver_with_a_certificate_from_another_ca_is_refused_before_anything_is_sent() {
    let Setup {
        output, listener, ..
    } = setup().await;
    let other = TestCa::new().localhost_cert();
    let impostor = TlsAcceptor::from(server_tls(&other, None).unwrap());
    let receiver = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = impostor.accept(tcp).await else {
            return 0;
        };
        let mut buf = Vec::new();
        let _ = tls.read_to_end(&mut buf).await;
        buf.len()
    });
    let batch = payloads(3);
    let refs: Vec<&[u8]> = batch.iter().map(|p| p.as_slice()).collect();
    let outcome = output.send_batch(&refs).await;
    assert!(
        matches!(&outcome, Outcome::TlsFailure { reason } if reason.to_lowercase().contains("certificate")),
        "{outcome:?}"
    );
    assert_eq!(
        receiver.await.unwrap(),
        0,
        "bytes reached an untrusted receiver"
    );
}
