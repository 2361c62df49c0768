# The network of a cell from inside: the egress proxy lets through exactly what
# `network.allow` names (a pinned local service), denies the rest and logs every
# decision; without the proxy nothing leaves, and a `none` cell has no proxy at all.
{
  pkgs,
  nixos,
  ...
}:
let
  curl = "${pkgs.curl}/bin/curl";
  probe = pkgs.writeShellScript "net-probe" ''
    PATH=${pkgs.coreutils}/bin
    out=$PWD/net-$1.txt
    : >"$out"
    try() { if "''${@:2}" >/dev/null 2>&1; then echo "$1=yes" >>"$out"; else echo "$1=no" >>"$out"; fi; }
    try allowed ${curl} -sf --max-time 10 http://svc.test:8080/
    try allowed-https-proxy-env sh -c 'test -n "$HTTPS_PROXY" && test -n "$HTTP_PROXY"'
    try other-port ${curl} -sf --max-time 10 http://svc.test:8081/
    try unlisted ${curl} -sf --max-time 10 http://example.test:8080/
    try direct-loopback ${curl} -sf --noproxy '*' --max-time 5 http://127.0.0.1:8080/
    # The VM's own address on the test network (the framework gives the first node .1).
    try direct-host ${curl} -sf --noproxy '*' --max-time 5 http://192.168.1.1:8080/
    try resolver ${pkgs.getent}/bin/getent hosts svc.test
  '';
in
(import ./common.nix { inherit pkgs nixos; }).test {
  name = "cell-network";

  machine = {
    # Two host services: the cell may reach the first only.
    systemd.services = pkgs.lib.genAttrs [ "svc-8080" "svc-8081" ] (name: {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "${pkgs.python3}/bin/python3 -m http.server --bind 0.0.0.0 ${pkgs.lib.removePrefix "svc-" name} --directory /etc";
    });
    programs.cell = {
      enable = true;
      cells.web = {
        agent = {
          kind = "custom";
          command = [
            "${probe}"
            "web"
          ];
        };
        network = {
          mode = "proxy";
          allow = [ "svc.test:8080" ];
          hosts."svc.test" = "127.0.0.1";
        };
      };
      cells.offline = {
        agent = {
          kind = "custom";
          command = [
            "${probe}"
            "offline"
          ];
        };
        network.mode = "none";
      };
    };
  };

  testScript = ''
    def report(name):
        text = as_alice(f"cat ~/w/net-{name}.txt")
        print(text)
        return dict(line.split("=", 1) for line in text.split())

    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("user@1000.service")
    machine.wait_for_open_port(8080)
    machine.wait_for_open_port(8081)
    as_alice("mkdir -p ~/w")

    with subtest("proxy cell: only the allowlist gets out"):
        as_alice("cd ~/w && cell-web")
        r = report("web")
        assert r["allowed"] == "yes", r
        assert r["allowed-https-proxy-env"] == "yes", r
        assert r["other-port"] == "no", r
        assert r["unlisted"] == "no", r
        assert r["direct-loopback"] == "no", r
        assert r["direct-host"] == "no", r
        assert r["resolver"] == "no", r

    with subtest("every decision is in the audit log"):
        log = as_alice("cell net log --cell web --json -n 0")
        print(log)
        assert "svc.test" in log and "example.test" in log, log

    with subtest("none cell: nothing gets out"):
        as_alice("cd ~/w && cell-offline")
        r = report("offline")
        assert r["allowed"] == "no", r
        assert r["direct-loopback"] == "no", r
        assert r["direct-host"] == "no", r
  '';
}
