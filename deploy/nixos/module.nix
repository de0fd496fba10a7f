# NixOS module for the eris origin, and optionally the Cloudflare tunnel in front of it.
#
#   imports = [ /path/to/eris/deploy/nixos/module.nix ];
#   services.eris = {
#     enable = true;
#     package = pkgs.writeShellScriptBin "eris" ''
#       exec ${pkgs.nodejs_22}/bin/node --disable-warning=ExperimentalWarning /opt/eris/origin/cli/index.ts "$@"
#     '';
#     signKeyPaths = [ "/etc/eris/signing-key.sec" ];   # root:adm 0640
#     environmentFile = "/etc/eris/eris.env";           # ERIS_EDGE_SECRET=...
#   };
#
# See docs/deployment.md for the whole deployment (keys, Worker, tokens, clients).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkEnableOption mkIf types;

  # The two shapes most options have: unset (null) unless given, and a list that is empty unless given.
  nullOption = type: attrs: mkOption ({ type = types.nullOr type; default = null; } // attrs);
  listOption = type: attrs: mkOption ({ type = types.listOf type; default = [ ]; } // attrs);

  cfg = config.services.eris;
  tunnel = cfg.cloudflared;
  push = cfg.push;

  tomlFormat = pkgs.formats.toml { };
  yamlFormat = pkgs.formats.yaml { };

  # `bind` as origin/config/index.ts reads it: HOST:PORT or [IPV6]:PORT.
  bindMatch = builtins.match "([[]([0-9a-fA-F:]+)[]]|([^:]+)):([0-9]+)" cfg.bind;
  bindV6 = if bindMatch == null then null else builtins.elemAt bindMatch 1;
  bindHost = if bindMatch == null then "" else if bindV6 != null then bindV6 else builtins.elemAt bindMatch 2;
  bindPort = if bindMatch == null then 0 else lib.toInt (builtins.elemAt bindMatch 3);
  # Where a client on this host (cloudflared) reaches the origin.
  localOriginUrl =
    let
      host =
        if bindHost == "0.0.0.0" then "127.0.0.1"
        else if bindHost == "::" then "[::1]"
        else if bindV6 != null then "[${bindV6}]"
        else bindHost;
    in
    "http://${host}:${toString bindPort}";
  bindIsLoopback = bindHost == "localhost" || bindHost == "::1" || lib.hasPrefix "127." bindHost;

  # The store the origin reads; storeRoot "/" is this machine's own store.
  rootPrefix = lib.removeSuffix "/" (toString cfg.storeRoot);
  storeDb = "${rootPrefix}/nix/var/nix/db/db.sqlite";

  # toString, not interpolation: a path literal must not be copied into the world-readable store.
  keyPaths = map toString cfg.signKeyPaths;

  # Several caches (`[[cache]]` tables); a cache without its own keys or priority takes the top-level ones.
  cacheTables = lib.mapAttrsToList (name: c: {
    inherit name;
    inherit (c) roots exclude publish;
    sign_key_paths = if c.signKeyPaths == [ ] then keyPaths else map toString c.signKeyPaths;
    priority = if c.priority == null then cfg.priority else c.priority;
  }
  // lib.optionalAttrs (c.keepDays != null) { keep_days = c.keepDays; }
  // lib.optionalAttrs (c.maxBytes != null) { max_bytes = c.maxBytes; }) cfg.caches;
  allKeyPaths = keyPaths ++ lib.concatMap (c: map toString c.signKeyPaths) (lib.attrValues cfg.caches);
  cacheNameOk = n: builtins.match "[a-z0-9][a-z0-9_-]{0,63}" n != null && !(builtins.elem n reservedCacheNames);
  reservedCacheNames = [ "nar" "log" "realisations" "v1" "health" "metrics" "nix-cache-info" ];

  # systemd's StateDirectory=eris: /var/lib/eris (usage accounting, push staging).
  stateDir = "/var/lib/eris";
  gcRootsDir = "${rootPrefix}/nix/var/nix/gcroots/eris";

  settings = {
    bind = cfg.bind;
    store_root = toString cfg.storeRoot;
    sign_key_paths = keyPaths;
    priority = cfg.priority;
    state_dir = stateDir;
    usage_retention_days = cfg.usageRetentionDays;
  }
  // lib.optionalAttrs (cfg.caches != { }) { cache = cacheTables; }
  // lib.optionalAttrs (cfg.defaultCache != null) { default_cache = cfg.defaultCache; }
  // lib.optionalAttrs (cfg.metricsBind != null) { metrics_bind = cfg.metricsBind; }
  // lib.optionalAttrs push.enable (
    {
      push_dir = "${stateDir}/push";
      push_trust = push.trust;
    }
    # This machine's store: imports go through the daemon.
    // lib.optionalAttrs (rootPrefix == "") { push_store = "daemon"; }
  )
  // cfg.extraConfig;
  configFile = tomlFormat.generate "eris.toml" settings;

  # CIDR lines of deploy/cloudflare-ips.txt; comment and blank lines are dropped.
  parseRanges =
    text:
    lib.filter (r: r != "") (
      map (
        line:
        let
          m = builtins.match "[[:space:]]*([^#[:space:]]*).*" line;
        in
        if m == null then "" else builtins.head m
      ) (lib.splitString "\n" text)
    );
  isCidr = r: builtins.match "[0-9.]+/[0-9]+|[0-9a-fA-F:]+/[0-9]+" r != null;
  firewallPorts = if cfg.cloudflarePorts == null then [ bindPort ] else cfg.cloudflarePorts;
  rangesV4 = lib.filter (r: !lib.hasInfix ":" r) cfg.cloudflareRanges;
  rangesV6 = lib.filter (r: lib.hasInfix ":" r) cfg.cloudflareRanges;

  tunnelCredentials = "/run/credentials/eris-cloudflared.service/credentials.json";
  tunnelConfig = {
    tunnel = tunnel.tunnelId;
    credentials-file = tunnelCredentials;
    # QUIC (cloudflared's default) has corrupted large streamed bodies for other Nix
    # caches: attic users saw "Bad NAR Hash or Size" until they forced HTTP/2
    # (zhaofengli/attic#281). HTTP/2 runs over TCP 443.
    protocol = "http2";
    no-autoupdate = true;
    ingress = [
      {
        hostname = tunnel.hostname;
        service = localOriginUrl;
        originRequest = {
          connectTimeout = "10s";
        }
        // lib.optionalAttrs tunnel.access.required {
          access = {
            required = true;
            teamName = tunnel.access.teamName;
            audTag = tunnel.access.audTag;
          };
        };
      }
      { service = "http_status:404"; }
    ];
  };
  tunnelConfigFile = yamlFormat.generate "eris-cloudflared.yml" tunnelConfig;

  # Shared by both services: systemd sandboxing for a network daemon that only reads files.
  hardening = {
    DynamicUser = true;
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateMounts = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    SystemCallErrorNumber = "EPERM";
    UMask = "0077";
  };
in
{
  options.services.eris = {
    enable = mkEnableOption "the eris origin (a private Nix binary cache served from the live /nix/store)";

    package = mkOption {
      type = types.package;
      example = lib.literalExpression ''
        pkgs.writeShellScriptBin "eris" '''
          exec ''${pkgs.nodejs_22}/bin/node --disable-warning=ExperimentalWarning /opt/eris/origin/cli/index.ts "$@"
        '''
      '';
      description = ''
        A package providing `bin/eris`, which runs `origin/cli/index.ts` with Node.js 22.18 or newer
        (a checkout with `npm ci --omit=dev` done). Node refuses to strip types from files
        under a `node_modules` directory, so the eris sources must not live in one.
      '';
    };

    bind = mkOption {
      type = types.str;
      default = "127.0.0.1:8788";
      description = "HOST:PORT (or [IPV6]:PORT) the origin listens on. Loopback is right when cloudflared runs on this host.";
    };

    storeRoot = mkOption {
      type = types.path;
      default = "/";
      description = "File-system root holding nix/store and nix/var/nix/db; `/` is this machine's store.";
    };

    signKeyPaths = listOption types.path {
      example = [ "/etc/eris/signing-key.sec" ];
      description = ''
        Secret key files in Nix's format (`nix-store --generate-binary-cache-key` or `eris keygen`);
        every narinfo is signed with each. Keep them out of the Nix store, readable by
        `keyGroup` (root:adm 0640). With `caches`, the keys of every cache that names none.
      '';
    };

    caches = mkOption {
      default = { };
      example = lib.literalExpression ''
        {
          team-a = { roots = [ "/nix/var/nix/profiles/system" ]; signKeyPaths = [ "/etc/eris/team-a.sec" ]; };
          ci = { exclude = [ "*-secrets*" ]; priority = 20; };
        }
      '';
      description = ''
        Named caches (`[[cache]]` tables of eris.toml), each a published slice of the store served
        under `https://<edge>/<name>`. Empty: one cache, `default`, publishing the whole store.
        Every cache also publishes the GC roots in `<storeRoot>/nix/var/nix/gcroots/eris/<name>/`
        (what `eris publish` and push write).
      '';
      type = types.attrsOf (
        types.submodule {
          options = {
            roots = listOption types.str {
              example = [ "/nix/var/nix/profiles/system" ];
              description = "Store paths, symlinks to store paths (profiles, GC roots) or directories of such symlinks whose closures this cache publishes.";
            };
            exclude = listOption types.str {
              example = [ "*-secrets*" ];
              description = "Glob patterns on the store path name after the hash; matching paths are not published.";
            };
            signKeyPaths = listOption types.path {
              description = "This cache's secret keys; empty: the top-level `signKeyPaths`.";
            };
            priority = nullOption (types.ints.between 0 1000000) {
              description = "This cache's nix-cache-info priority; null: the top-level `priority`.";
            };
            keepDays = nullOption (types.ints.between 1 3650) {
              example = 30;
              description = "Retention (`keep_days`, docs/retention.md): drop a pushed or published root nobody pushed, published or fetched anything of for this many days (at most `usageRetentionDays`); null: keep.";
            };
            maxBytes = nullOption (types.either types.ints.positive types.str) {
              example = "200G";
              description = "Retention (`max_bytes`): keep the union of this cache's closures under this many NAR bytes (a number or \"200G\"), least recently used roots dropped first; null: no limit.";
            };
            publish = mkOption {
              type = types.enum [
                "roots"
                "all"
              ];
              default = "roots";
              description = "`roots`: the closures of `roots` (and the cache's GC-root directory); `all`: every valid path in the store.";
            };
          };
        }
      );
    };

    defaultCache = nullOption types.str {
      example = "team-a";
      description = "The cache served at the bare root (`https://<edge>/`); null: the only cache, or the one named `default`, else none (bare paths answer 404).";
    };

    push = {
      enable = mkEnableOption ''
        HTTP push (`nix copy --to https://<edge>/<cache>` with a write token): uploads are
        verified, then imported into the store through the Nix daemon and GC-rooted under
        `<storeRoot>/nix/var/nix/gcroots/eris/<cache>/`. The origin then runs as the static system
        user `eris` (GC roots must keep an owner) and may write only that directory and
        /var/lib/eris (`push_dir` = /var/lib/eris/push)
      '';
      trust = mkOption {
        type = types.enum [
          "signature"
          "no-check-sigs"
        ];
        default = "signature";
        description = ''
          How the daemon accepts the origin's imports. `signature`: the origin signs what it has
          verified with the cache's key, and the daemon trusts that key (`publicKeys`, added to
          `nix.settings.extra-trusted-public-keys`). `no-check-sigs`: imports skip signature checks,
          which needs `eris` in `nix.settings.trusted-users` (the module adds it; a trusted user can
          do anything to the store).
        '';
      };
      publicKeys = listOption types.str {
        example = [ "cache.example.com-1:8Ku6sSR6QwQmzJdPYjvN3TbgZVhDXnHiaE4Y5Y3wz1g=" ];
        description = "Public keys of the caches that accept pushes (the `.pub` of their `signKeyPaths`); the daemon must trust them for `trust = \"signature\"`.";
      };
    };

    metricsBind = nullOption types.str {
      example = "127.0.0.1:9102";
      description = "Turns on the Prometheus listener (`metrics_bind`): `HOST:PORT` or a bare port on loopback; it answers only `GET /metrics` and asks for no credential, so keep it off the internet (no firewall port is opened).";
    };

    usageRetentionDays = mkOption {
      type = types.ints.between 1 3650;
      default = 90;
      description = "Days of per-user usage (`eris usage`) kept in /var/lib/eris/usage.sqlite.";
    };

    keyGroup = mkOption {
      type = types.str;
      default = "adm";
      description = "Supplementary group of the (dynamic) service user, for reading the signing keys.";
    };

    environmentFile = nullOption types.path {
      example = "/etc/eris/eris.env";
      description = ''
        systemd EnvironmentFile (read by systemd as root, so it may be root:root 0600) that sets
        `ERIS_EDGE_SECRET`, the secret the Worker sends (`wrangler secret put EDGE_SECRET`).
        The origin uses it when the config has neither `edge_secret` nor `edge_secret_file`.
      '';
    };

    priority = mkOption {
      type = types.ints.between 0 1000000;
      default = 30;
      description = "Priority advertised in nix-cache-info; Nix prefers lower values.";
    };

    extraConfig = mkOption {
      type = tomlFormat.type;
      default = { };
      example = {
        compression = "zstd";
        nar_cache_dir = "/var/cache/eris";
      };
      description = ''
        More keys for eris.toml (see origin/config/index.ts; unknown keys are rejected at start).
        String values may read the service's environment as `''${NAME}`; `$$` is a literal `$`.
      '';
    };

    openFirewallForCloudflare = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the origin's port (or `cloudflarePorts`) to Cloudflare's address ranges only
        (`cloudflareRanges`), for an origin reached directly instead of through a tunnel. Needs the
        iptables firewall backend. Every Cloudflare customer's traffic comes from these ranges:
        the edge secret, not the firewall, is what authenticates the Worker.
      '';
    };

    cloudflarePorts = nullOption (types.listOf types.port) {
      example = [ 443 ];
      description = ''
        TCP ports `openFirewallForCloudflare` opens; null means the origin's own port (from `bind`).
        Use [ 443 ] when a TLS-terminating proxy (Full (strict) TLS, Authenticated Origin Pulls)
        sits in front of a loopback origin.
      '';
    };

    cloudflareRanges = mkOption {
      type = types.listOf types.str;
      default = parseRanges (builtins.readFile ../cloudflare-ips.txt);
      defaultText = lib.literalMD "the CIDRs in `deploy/cloudflare-ips.txt` (refresh with `deploy/refresh-cloudflare-ips.sh`)";
      description = "Source ranges allowed by `openFirewallForCloudflare`.";
    };

    cloudflared = {
      enable = mkEnableOption "a Cloudflare named tunnel (cloudflared) to the origin";

      package = mkOption {
        type = types.package;
        default = pkgs.cloudflared;
        defaultText = lib.literalExpression "pkgs.cloudflared";
        description = "The cloudflared package.";
      };

      tunnelId = nullOption types.str {
        example = "6ff42ae2-765d-4adf-8112-31c55c1551ef";
        description = "UUID of the tunnel (`cloudflared tunnel create eris`).";
      };

      credentialsFile = nullOption types.path {
        example = "/etc/eris/tunnel.json";
        description = "The tunnel's credentials JSON; handed to the service with LoadCredential, so it may be root-only.";
      };

      hostname = nullOption types.str {
        example = "eris-origin.example.com";
        description = "Public hostname routed to the tunnel (`cloudflared tunnel route dns`); the Worker's ORIGIN_URL is https://<hostname>.";
      };

      access = {
        required = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Make cloudflared reject requests without a valid Cloudflare Access token for this
            application (Access Service Auth). The Worker would then have to send a service token,
            which eris does not do yet: leave this off unless you add that.
          '';
        };
        teamName = nullOption types.str {
          description = "Zero Trust team name (the <team> of <team>.cloudflareaccess.com).";
        };
        audTag = listOption types.str {
          description = "Application Audience (AUD) tags of the Access application.";
        };
      };
    };
  };

  config = mkIf cfg.enable (lib.mkMerge [
    {
      assertions = [
        {
          assertion = bindMatch != null;
          message = "services.eris.bind must be HOST:PORT or [IPV6]:PORT, got \"${cfg.bind}\".";
        }
        {
          assertion = cfg.signKeyPaths != [ ] || (cfg.caches != { } && lib.all (c: c.signKeyPaths != [ ]) (lib.attrValues cfg.caches));
          message = "services.eris.signKeyPaths needs at least one secret key file (or every cache its own signKeyPaths).";
        }
        {
          assertion = lib.all cacheNameOk (lib.attrNames cfg.caches);
          message = "services.eris.caches: names must match [a-z0-9][a-z0-9_-]{0,63} and not be one of ${lib.concatStringsSep " " reservedCacheNames}.";
        }
        {
          assertion = cfg.defaultCache == null || builtins.hasAttr cfg.defaultCache cfg.caches;
          message = "services.eris.defaultCache must name one of services.eris.caches.";
        }
        {
          assertion = lib.all (c: c.publish == "roots" || c.roots == [ ]) (lib.attrValues cfg.caches);
          message = "services.eris.caches: a cache with publish = \"all\" publishes every valid path; it takes no roots.";
        }
        {
          assertion = lib.all (p: !lib.hasPrefix builtins.storeDir p) allKeyPaths;
          message = "services.eris.signKeyPaths: a secret key in the Nix store is world-readable; give a path outside it as a string.";
        }
        {
          assertion =
            cfg.environmentFile != null || cfg.extraConfig ? edge_secret || cfg.extraConfig ? edge_secret_file;
          message = "services.eris: set environmentFile (with ERIS_EDGE_SECRET=...) or extraConfig.edge_secret_file.";
        }
      ];

      users.groups.${cfg.keyGroup} = { };

      systemd.services.eris = {
        description = "eris Nix binary cache origin";
        wantedBy = [ "multi-user.target" ];
        after = [ "network.target" ];
        # `compression = "xz"` runs the xz program.
        # Push imports speak the worker protocol to the daemon's socket; `nix` is for eris doctor (nix show-config).
        path = [ pkgs.xz ] ++ lib.optional push.enable config.nix.package;
        serviceConfig = hardening // {
          Type = "simple";
          # Nix's DB is in WAL mode: a reader needs db.sqlite-wal and -shm, which only root may
          # create in /nix/var/nix/db, and the last Nix process to close the DB deletes them. A
          # read-only open by root ("+": outside the sandbox) leaves them in place; the origin,
          # once open, keeps them from being deleted. Without this the service user fails on an
          # idle host with "attempt to write a readonly database". If Nix removes them in between,
          # the start fails and Restart= tries again.
          ExecStartPre = "+${lib.getBin pkgs.sqlite}/bin/sqlite3 -readonly ${storeDb} 'SELECT 1 FROM ValidPaths LIMIT 0'";
          ExecStart = "${cfg.package}/bin/eris serve --config ${configFile}";
          EnvironmentFile = lib.optional (cfg.environmentFile != null) (toString cfg.environmentFile);
          Restart = "on-failure";
          RestartSec = 2;
          # A throw-away user (DynamicUser), named so that logs and `ps` say eris; a static one with push.
          DynamicUser = !push.enable;
          User = "eris";
          Group = "eris";
          SupplementaryGroups = [ cfg.keyGroup ];
          # The writable places: /var/cache/eris, for `nar_cache_dir` (compressed NARs), and
          # /var/lib/eris, the `state_dir` (usage accounting).
          CacheDirectory = "eris";
          StateDirectory = "eris";
          # ProtectSystem=strict already makes everything read-only; say so explicitly for the store.
          ReadOnlyPaths = [
            "-${rootPrefix}/nix/store"
            "-${rootPrefix}/nix/var/nix/db"
          ];
          # Push: the GC roots of pushed paths. The daemon writes the store; its socket is reachable
          # on the read-only file system (connecting needs no writable mount).
          ReadWritePaths = lib.optional push.enable gcRootsDir;
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
            "AF_UNIX"
          ];
          # Node's JIT needs writable+executable memory.
          MemoryDenyWriteExecute = false;
          LimitNOFILE = 65536;
        };
      };
    }

    (mkIf push.enable {
      assertions = [
        {
          assertion = push.trust == "no-check-sigs" || push.publicKeys != [ ];
          message = "services.eris.push: with trust = \"signature\", set publicKeys (the caches' public keys) so the Nix daemon accepts the origin's imports.";
        }
      ];
      users.users.eris = {
        isSystemUser = true;
        group = "eris";
        extraGroups = [ cfg.keyGroup ];
        description = "eris Nix binary cache origin";
      };
      users.groups.eris = { };
      # GC roots of pushed paths: <storeRoot>/nix/var/nix/gcroots/eris/<cache>/.
      systemd.tmpfiles.rules = [
        "d ${gcRootsDir} 0755 eris eris -"
      ]
      ++ map (name: "d ${gcRootsDir}/${name} 0755 eris eris -") (
        if cfg.caches == { } then [ "default" ] else lib.attrNames cfg.caches
      );
      nix.settings = lib.mkIf (rootPrefix == "") (
        if push.trust == "signature" then { extra-trusted-public-keys = push.publicKeys; } else { trusted-users = [ "eris" ]; }
      );
    })

    (mkIf cfg.openFirewallForCloudflare {
      assertions = [
        {
          assertion = !config.networking.nftables.enable;
          message = "services.eris.openFirewallForCloudflare uses iptables rules (networking.firewall.extraCommands); it does not work with networking.nftables.enable.";
        }
        {
          assertion = lib.all isCidr cfg.cloudflareRanges && rangesV4 != [ ];
          message = "services.eris.cloudflareRanges must be CIDRs (check deploy/cloudflare-ips.txt).";
        }
      ];
      warnings = lib.optional (cfg.cloudflarePorts == null && bindIsLoopback) "services.eris.openFirewallForCloudflare is set but the origin binds to loopback (${cfg.bind}); nothing outside this host can reach it.";
      networking.firewall.extraCommands =
        let
          rules =
            cmd: ranges:
            lib.concatMapStrings (
              port:
              lib.concatMapStrings (
                r: "${cmd} -w -A nixos-fw -p tcp -s ${r} --dport ${toString port} -j nixos-fw-accept\n"
              ) ranges
            ) firewallPorts;
        in
        rules "iptables" rangesV4 + lib.optionalString config.networking.enableIPv6 (rules "ip6tables" rangesV6);
    })

    (mkIf tunnel.enable {
      assertions = [
        {
          assertion = tunnel.tunnelId != null && tunnel.credentialsFile != null && tunnel.hostname != null;
          message = "services.eris.cloudflared needs tunnelId, credentialsFile and hostname.";
        }
        {
          assertion = tunnel.access.required -> (tunnel.access.teamName != null && tunnel.access.audTag != [ ]);
          message = "services.eris.cloudflared.access.required needs teamName and audTag.";
        }
      ];

      systemd.services.eris-cloudflared = {
        description = "Cloudflare tunnel to the eris origin";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [
          "network-online.target"
          "eris.service"
        ];
        serviceConfig = hardening // {
          Type = "simple";
          ExecStart = "${tunnel.package}/bin/cloudflared tunnel --no-autoupdate --config ${tunnelConfigFile} run";
          LoadCredential = [ "credentials.json:${toString tunnel.credentialsFile}" ];
          Restart = "on-failure";
          RestartSec = 5;
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
            "AF_UNIX"
            "AF_NETLINK"
          ];
          MemoryDenyWriteExecute = true;
        };
      };
    })
  ]);
}
