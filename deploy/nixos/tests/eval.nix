# Evaluates deploy/nixos/module.nix with nixpkgs' own module system (lib.evalModules from
# nixpkgs' lib/), offline, without NixOS or a nixpkgs checkout. test/deploy/nixos-module.test.ts runs
#
#   nix-instantiate --eval --strict --json deploy/nixos/tests/eval.nix \
#     --argstr libPath ../shared/nixpkgs-lib/lib --argstr configJSON '{"services":{"eris":{...}}}'
#
# What stands in for NixOS and nixpkgs, and how faithfully:
# - The NixOS options the module sets are declared here, typed as loosely as NixOS types them
#   (systemd unit options accept any value; submodules reject unknown options, as NixOS's do).
#   A misspelled or wrongly typed option therefore fails here as it would on NixOS.
# - Failed assertions throw like NixOS's `system.build.toplevel` does ("Failed assertions: …").
# - `pkgs` has only what the module uses: packages are placeholders with fake store paths;
#   `pkgs.formats.{toml,yaml}` have nixpkgs' value types, and `generate` writes the value as
#   JSON (builtins.toFile) where nixpkgs runs remarshal to write TOML/YAML — the test reads the
#   file and converts it the same way.
{
  libPath,
  configJSON,
  modulePath ? ../module.nix,
}:
let
  lib = import libPath;
  inherit (lib) mkOption types;

  fakePkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    outputs = [ "out" ];
  };

  # nixpkgs pkgs/pkgs-lib/formats.nix: the JSON-like value types of the toml and yaml formats.
  jsonLike =
    description: nullable:
    let
      valueType =
        (if nullable then types.nullOr else lib.id) (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          inherit description;
        };
    in
    valueType;
  format = description: nullable: {
    type = jsonLike description nullable;
    generate = name: value: builtins.toFile name (builtins.toJSON value);
  };

  pkgs = {
    formats = {
      toml = { }: format "TOML value" false;
      yaml = { }: format "YAML value" true;
    };
    xz = fakePkg "xz-5.6.3";
    sqlite = fakePkg "sqlite-3.46.1";
    cloudflared = fakePkg "cloudflared-2024.12.2";
    nix = fakePkg "nix-2.24.10";
  };

  # nixos/lib/systemd-unit-options.nix: unit options take any value; lists concatenate.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  unitList = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  service = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = unitList;
      requiredBy = unitList;
      wants = unitList;
      requires = unitList;
      after = unitList;
      before = unitList;
      bindsTo = unitList;
      partOf = unitList;
      conflicts = unitList;
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
    };
  };

  # The few NixOS options the module sets or reads.
  nixos = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      systemd.services = mkOption {
        type = types.attrsOf (types.submodule service);
        default = { };
      };
      systemd.tmpfiles.rules = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      users.users = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              isSystemUser = mkOption {
                type = types.bool;
                default = false;
              };
              group = mkOption {
                type = types.str;
                default = "";
              };
              extraGroups = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              home = mkOption {
                type = types.path;
                default = "/var/empty";
              };
              createHome = mkOption {
                type = types.bool;
                default = false;
              };
              description = mkOption {
                type = types.str;
                default = "";
              };
            };
          }
        );
        default = { };
      };
      users.groups = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              gid = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
              members = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
            };
          }
        );
        default = { };
      };
      networking.enableIPv6 = mkOption {
        type = types.bool;
        default = true;
      };
      networking.nftables.enable = mkOption {
        type = types.bool;
        default = false;
      };
      networking.firewall = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        allowedTCPPorts = mkOption {
          type = types.listOf types.port;
          default = [ ];
        };
        extraCommands = mkOption {
          type = types.lines;
          default = "";
        };
      };
      environment.etc = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
              };
              source = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              mode = mkOption {
                type = types.str;
                default = "symlink";
              };
            };
          }
        );
        default = { };
      };
      nix.package = mkOption {
        type = types.package;
        default = pkgs.nix;
      };
      # nixos/modules/config/nix.nix: freeform settings whose lists concatenate; a few declared.
      nix.settings = mkOption {
        type = types.submodule {
          freeformType =
            let
              atom = types.oneOf [ types.bool types.int types.float types.str types.path types.package ];
            in
            types.attrsOf (types.either atom (types.listOf atom));
          options.trusted-users = mkOption {
            type = types.listOf types.str;
            default = [ "root" ];
          };
          options.trusted-public-keys = mkOption {
            type = types.listOf types.str;
            default = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
          };
        };
        default = { };
      };
    };
  };

  eval = lib.evalModules {
    modules = [
      nixos
      modulePath
      (builtins.fromJSON configJSON)
      { _module.args.pkgs = pkgs; }
    ];
  };
  inherit (eval) config;

  failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  # Submodule values carry no `_module`; drop disabled services as NixOS does.
  services = lib.filterAttrs (_: s: s.enable) config.systemd.services;
in
if failed != [ ] then
  throw "Failed assertions:\n${lib.concatMapStringsSep "\n" (m: "- ${m}") failed}"
else
  {
    inherit services;
    users = {
      inherit (config.users) users groups;
    };
    firewall = config.networking.firewall;
    tmpfiles = config.systemd.tmpfiles.rules;
    etc = config.environment.etc;
    nixSettings = config.nix.settings;
    inherit (config) warnings;
  }
