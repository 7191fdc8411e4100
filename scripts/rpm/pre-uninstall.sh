# %preun of the sec-tracker .rpm. $1: 0 on erase, 1 on upgrade. On erase, stops and disables both
# daemons before their binaries go (an upgrade restarts them in %post instead).
if [ "$1" = 0 ]; then
  if [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now sec-tracker-shipperd.service sec-tracker-collectord.service >/dev/null 2>&1 || true
  fi
  # Without systemd: a packaged daemon found by its exact executable path, never by name.
  for d in shipperd collectord; do
    for exe in /proc/[0-9]*/exe; do
      target=$(readlink "$exe" 2>/dev/null) || continue
      case "$target" in
        "/usr/local/bin/$d" | "/usr/local/bin/$d (deleted)")
          pid=${exe#/proc/}; pid=${pid%/exe}
          kill -TERM "$pid" 2>/dev/null || true
          ;;
      esac
    done
  done
fi
exit 0
