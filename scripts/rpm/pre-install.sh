# %pre of the sec-tracker .rpm: the system group and user sec-tracker exist before the files that
# name them (the config is root:sec-tracker 0640) are laid down. An existing group is reused.
USER_NAME=sec-tracker
if ! getent group "$USER_NAME" >/dev/null; then
  groupadd --system "$USER_NAME"
fi
if ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --system --gid "$USER_NAME" --no-create-home --home-dir /nonexistent \
          --shell /sbin/nologin --comment "sec-tracker shipper" "$USER_NAME"
fi
exit 0
