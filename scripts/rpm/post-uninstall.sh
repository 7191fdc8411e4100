# %postun of the sec-tracker .rpm. $1: 0 on erase, 1 on upgrade. On erase the SELinux module is
# removed; the config (kept as .rpmsave when edited), the queue of unsent events, collectord's
# baseline and the user stay, as the RHEL family leaves them: remove /var/lib/sec-tracker and
# /etc/sec-tracker by hand when they are no longer wanted.
if [ "$1" = 0 ] && [ "$(readlink /usr/local/bin/sec-tracker 2>/dev/null)" = sec-trackerctl ]; then
  rm -f /usr/local/bin/sec-tracker
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = 0 ] && command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled \
   && command -v semodule >/dev/null 2>&1 && semodule -l 2>/dev/null | grep -q '^sec_tracker\b'; then
  semodule -r sec_tracker >/dev/null 2>&1 || true
fi
exit 0
