# %post of the sec-tracker .rpm (cargo-generate-rpm, [package.metadata.generate-rpm] in
# ctl/Cargo.toml). $1: 1 on install, 2 on upgrade. Does what the .deb's postinst does, the RHEL
# family's way (%pre made the user and group; the package sets the config's owner and mode): the
# API key, the seed's name, the state directories, the SELinux module and the files' labels, the
# units. Like the distribution's own services, nothing is enabled or started on install.
USER_NAME=sec-tracker
CONF_DIR=/etc/sec-tracker
CONFIG=$CONF_DIR/config.json
STATE=/var/lib/sec-tracker

# The config's directory: the readers' group may list it (rpm makes it root 0755).
chown root:"$USER_NAME" "$CONF_DIR"
chmod 0750 "$CONF_DIR"
# The API key: the shipper's alone, never in the config. Created empty; never overwritten.
if [ ! -e "$CONF_DIR/api-key" ]; then
  install -m 0600 -o "$USER_NAME" -g "$USER_NAME" /dev/null "$CONF_DIR/api-key"
fi
# The seed's name for the CLI: `sec-tracker -local -json` keeps working.
ln -sfn sec-trackerctl /usr/local/bin/sec-tracker

# collectord's baseline (root), shipperd's queue (sec-tracker).
install -d -m 0755 -o root -g root "$STATE"
install -d -m 0700 -o root -g root "$STATE/collectord"
install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE/shipperd"
find "$STATE/shipperd" -xdev -exec chown -h "$USER_NAME:$USER_NAME" {} +

# SELinux: the daemons' module (sec_tracker.te beside the AppArmor profiles), then the labels.
if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled && command -v semodule >/dev/null 2>&1; then
  if semodule -i /usr/share/selinux/packages/sec_tracker.pp; then
    restorecon -RF /usr/local/bin/collectord /usr/local/bin/shipperd "$CONF_DIR" "$STATE" 2>/dev/null || true
  else
    echo "sec-tracker: warning: could not load the SELinux module /usr/share/selinux/packages/sec_tracker.pp" >&2
  fi
else
  echo "sec-tracker: SELinux not enabled: module installed in /usr/share/selinux/packages, not loaded"
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ "$1" = 1 ]; then
    echo "sec-tracker: start the collector with: systemctl enable --now sec-tracker-collectord.service"
    echo "  and, once server.url is set in $CONFIG: systemctl enable --now sec-tracker-shipperd.service"
  else
    # An upgrade restarts what runs, as the distribution's services do (%systemd_postun_with_restart).
    systemctl try-restart sec-tracker-collectord.service sec-tracker-shipperd.service >/dev/null 2>&1 || true
  fi
fi
exit 0
