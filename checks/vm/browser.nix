# The browser of a cell with nixpkgs' Chromium: an extension declared with
# `chromium.extensions` is loaded by the command the module renders (its service worker is
# a DevTools target), and `cell login` keeps a cookie set by a local site, through the
# cell's proxy, in the exported Playwright storage state and in the profile.
{
  pkgs,
  nixos,
  ...
}:
let
  # An MV3 extension with a service worker, as a directory (`src` takes a derivation).
  extension = pkgs.runCommand "cell-test-extension" { } ''
    mkdir $out
    echo '{"manifest_version": 3, "name": "cell test", "version": "1.0", "background": {"service_worker": "worker.js"}}' >$out/manifest.json
    echo "self.addEventListener('install', () => {});" >$out/worker.js
  '';
  # A site on the VM's loopback: `/` sets a cookie; every request is logged with its cookies.
  site = pkgs.writeText "site.py" ''
    import http.server

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open("/var/log/cell-site.log", "a") as log:
                log.write(f"{self.path} {self.headers.get('Cookie')}\n")
            self.send_response(200)
            if self.path == "/":
                self.send_header("Set-Cookie", "sid=vm-login; Max-Age=3600; Path=/")
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>signed in</html>")

    http.server.HTTPServer(("127.0.0.1", 8080), Site).serve_forever()
  '';
in
(import ./common.nix { inherit pkgs nixos; }).test {
  name = "cell-browser";

  machine = {
    virtualisation.memorySize = 2048;
    environment.systemPackages = [
      pkgs.curl
      pkgs.jq
    ];
    systemd.services.cell-site = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 ${site}";
    };
    programs.cell = {
      enable = true;
      cells.web = {
        network = {
          mode = "proxy";
          allow = [ "login.test:8080" ];
          hosts."login.test" = "127.0.0.1";
        };
        chromium = {
          enable = true;
          extensions.mine = {
            src = extension;
            enable = true;
          };
        };
      };
    };
  };

  testScript = ''
    import base64, json

    def in_project(cmd):
        return as_alice("cd ~/project && " + cmd)

    machine.wait_for_unit("user@1000.service")
    machine.wait_for_unit("cell-site.service")
    machine.succeed("su - alice -c 'mkdir -p ~/project'")

    with subtest("the declared extension is loaded by the rendered browser command"):
        command = json.loads(machine.succeed("jq -c .cells.web.browser.command /etc/cell/config.json"))
        assert any(a.startswith("--load-extension=") for a in command), command
        probe = (
            shlex.join(command)
            + " --headless=new --user-data-dir=/tmp/probe --remote-debugging-port=9333 about:blank"
            + " >/dev/null 2>&1 & for i in $(seq 60); do"
            + " curl -s http://127.0.0.1:9333/json/list >targets.json && grep -q worker.js targets.json && break;"
            + " sleep 1; done"
        )
        encoded = base64.b64encode(probe.encode()).decode()
        machine.succeed(f"echo {encoded} | base64 -d >/home/alice/project/probe.sh && chown alice /home/alice/project/probe.sh")
        in_project("cell run --cell web --network none -- sh probe.sh")
        targets = json.loads(in_project("cat targets.json"))
        workers = [t for t in targets if t["url"].startswith("chrome-extension://") and t["url"].endswith("/worker.js")]
        assert len(workers) == 1, targets

    with subtest("cell login keeps the site's cookie and exports it"):
        out = in_project("(sleep 15; echo) | cell login --cell web --display none http://login.test:8080/ 2>&1")
        print(out)
        machine.succeed("grep -q '^/ ' /var/log/cell-site.log")
        state = json.loads(in_project("cat ~/.local/share/cell/web/home/.playwright/storage-state.json"))
        assert any(c["name"] == "sid" and c["value"] == "vm-login" for c in state["cookies"]), state
        assert "warning" not in out, out
  '';
}
