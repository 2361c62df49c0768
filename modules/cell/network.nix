# `network`: what the cell may reach, through the egress proxy or not at all.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.network;
in
{
  options.network = {
    mode = mkOption {
      type = types.nullOr (
        types.enum [
          "none"
          "proxy"
        ]
      );
      default = null;
      description = ''
        `none`: loopback only. `proxy`: the egress proxy is the only way out, to what
        `allow` names. `null`: `proxy` for agents and whenever `allow` or `hosts` is
        set, else `none`.
      '';
      example = "proxy";
    };
    allow = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        Destinations the proxy lets through: `host`, `*.domain` (strict subdomains) or
        an IP literal, each with an optional `:port` (default 80 and 443). Empty denies
        everything. `cell` itself rejects `*` and `*.com`-style entries.
      '';
      example = [
        "github.com"
        "*.githubusercontent.com"
        "registry.npmjs.org:443"
      ];
    };
    hosts = mkOption {
      type = types.attrsOf types.str;
      default = { };
      description = "Static name pins for the proxy (name → IP address), for reaching a named local service.";
      example = {
        "db.test" = "127.0.0.1";
      };
    };
    socks = mkOption {
      type = types.bool;
      default = true;
      description = "Also offer SOCKS5 on 127.0.0.1:1080 inside the cell (for ssh and git over ssh).";
    };
  };

  config.assertions.network = at: [
    {
      assertion = cfg.mode != "none" || (cfg.allow == [ ] && cfg.hosts == { });
      message = "${at}.network.mode is \"none\", which lets nothing out, but ${at}.network.allow or ${at}.network.hosts is set; set ${at}.network.mode = \"proxy\" or remove them.";
    }
  ];
}
