# Cells that use every option, shared by the NixOS and home-manager module tests; their
# rendering is checks/golden/full.json (on NixOS; home-manager renders no `runAs` for the
# cells that set none, where the NixOS module fills in its account `cell`).
{
  defaultCell = "claude";
  cells = {
    claude = {
      agent = {
        kind = "claude";
        args = [ "--dangerously-skip-permissions" ];
      };
      worktree.path = "/home/alice/src/project";
      runAs = "agent";
      home.path = "/var/lib/cells/claude/home";
      binds = [
        { src = "/home/alice/.gitconfig"; }
        {
          src = "/srv/data";
          dst = "/data";
          mode = "rw";
          optional = true;
        }
      ];
      env.EDITOR = "vi";
      passEnv = [ "GITHUB_TOKEN" ];
      network = {
        allow = [
          "github.com"
          "*.githubusercontent.com:443"
        ];
        hosts."db.test" = "127.0.0.1";
        socks = false;
      };
      ports.publish = [
        8000
        "127.0.0.1:5173:5173"
      ];
      security.protectedPaths = [
        "scripts/deploy.sh"
        "ci/"
      ];
      envFromFile.ANTHROPIC_API_KEY = "/run/secrets/anthropic";
      state = {
        dir = "/home/alice/.local/share/cell-state/claude";
        links = [ ".claude/skills" ];
      };
      patches = "/home/alice/patches";
      project = {
        network = true;
        env = true;
        bindsUnder = [ "/srv/datasets" ];
      };
      fragments = {
        zz-last = {
          order = 10;
          command = [
            "/etc/cell/setup.sh"
            "--quiet"
          ];
          onFailure = "warn";
          timeoutSeconds = 5;
        };
        aa-first.command = [ "/etc/cell/first.sh" ];
      };
      mcp.servers = {
        fetch = {
          command = "mcp-server-fetch";
          args = [ "--ignore-robots-txt" ];
          env.LOG = "debug";
        };
        docs = {
          url = "https://mcp.example.com/mcp";
          headers.Authorization = "Bearer token";
          transport = "sse";
        };
      };
      limits = {
        memory = "4G";
        cpuQuota = "200%";
        cpuWeight = 50;
        tasks = 512;
      };
      nixDaemon.enable = true;
      sidecars.mcp-github = {
        command = [
          "/run/current-system/sw/bin/github-mcp-server"
          "http"
        ];
        env.LOG_LEVEL = "info";
        envFromFile.GITHUB_TOKEN = "/run/secrets/github";
        port = 8931;
        cellPort = 8000;
        readyFd = true;
        via = "egress";
        cellFiles."/etc/ssl/sidecar-ca.pem" = "/var/lib/cell-mitm/ca.pem";
      };
      ports.host = [
        5432
        11434
      ];
    };
    sandbox = {
      command = [
        "bash"
        "-l"
      ];
      hostSystem = false;
      path = [ "/run/current-system/sw/bin" ];
      network.mode = "none";
      security = {
        defaultProtectedPaths = false;
        unsafeAllowAllSyscalls = true;
      };
      limits = {
        unsafeNoLimits = true;
      };
      agent = {
        kind = "custom";
        command = [
          "aider"
          "--yes"
        ];
        networkPreset = false;
      };
      worktree.allowBroad = true;
    };
    quiet = {
      wrapper = false;
      network.mode = "proxy";
    };
  };
}
