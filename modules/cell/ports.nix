# `ports`: published ports, host ports that reach the cell's loopback ports through a socket
# in the launch's runtime directory (never a route). Rendered as the JSON `ports.publish`,
# each entry a string (`cell check` parses them again at build time).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.ports;

  # "ADDRESS:HOSTPORT:CELLPORT", "HOSTPORT:CELLPORT" or "HOSTPORT" (a bare port is a number).
  spec = types.strMatching "(([0-9]{1,3}[.]){3}[0-9]{1,3}|[[][0-9a-fA-F:.]+[]]):[0-9]+:[0-9]+|[0-9]+(:[0-9]+)?";

  entries = map toString cfg.publish;
  # The ports of one entry, last two fields (a bare port is both).
  portsOf =
    e:
    let
      fields = lib.splitString ":" (lib.last (lib.splitString "]" e));
      nums = lib.filter (f: f != "") fields;
      tail = lib.sublist (lib.max 0 (builtins.length nums - 2)) 2 nums;
    in
    if builtins.length tail == 1 then tail ++ tail else tail;
  hostPort = e: builtins.head (portsOf e);
  badPorts = lib.filter (
    e: lib.any (p: builtins.stringLength p > 5 || lib.toInt p < 1 || lib.toInt p > 65535) (portsOf e)
  ) entries;
  hostPorts = map hostPort entries;
  duplicates = lib.unique (lib.filter (p: lib.count (q: q == p) hostPorts > 1) hostPorts);
in
{
  options.ports = {
    publish = mkOption {
      type = types.listOf (types.either types.port spec);
      default = [ ];
      description = ''
        Ports of the cell reachable from the host while it runs: `8000` (the host's
        127.0.0.1:8000 reaches the cell's 127.0.0.1:8000) or `"8080:8000"`
        (HOSTPORT:CELLPORT). Each connection goes through a socket in the launch's runtime
        directory, never a route, in either network mode. `"0.0.0.0:8080:8000"` listens on
        every interface of the host, so other machines reach the cell too (cell warns).
      '';
      example = [
        8000
        "5173:5173"
      ];
    };
  };

  config.assertions.ports = at: [
    {
      assertion = badPorts == [ ];
      message = "${at}.ports.publish has ${
        lib.concatMapStringsSep ", " builtins.toJSON badPorts
      }, whose ports are not 1-65535; give ports between 1 and 65535.";
    }
    {
      assertion = duplicates == [ ];
      message = "${at}.ports.publish publishes host port ${lib.concatStringsSep ", " duplicates} more than once; publish each host port once (HOSTPORT:CELLPORT picks another host port).";
    }
  ];
}
