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
  # An option of this type with this default: how most stand-ins below are declared.
  opt = type: default: mkOption { inherit type default; };

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
  unitList = opt (types.listOf types.str) [ ];
  service = {
    options = {
      enable = opt types.bool true;
      description = opt types.str "";
      wantedBy = unitList;
      requiredBy = unitList;
      wants = unitList;
      requires = unitList;
      after = unitList;
      before = unitList;
      bindsTo = unitList;
      partOf = unitList;
      conflicts = unitList;
      path = opt (types.listOf (types.either types.package types.str)) [ ];
      environment = opt (types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]))) { };
      serviceConfig = opt (types.attrsOf unitOption) { };
      unitConfig = opt (types.attrsOf unitOption) { };
      preStart = opt types.lines "";
      script = opt types.lines "";
      restartTriggers = opt (types.listOf types.unspecified) [ ];
    };
  };

  # The few NixOS options the module sets or reads.
  nixos = {
    options = {
      assertions = opt (types.listOf types.unspecified) [ ];
      warnings = opt (types.listOf types.str) [ ];
      systemd.services = opt (types.attrsOf (types.submodule service)) { };
      systemd.tmpfiles.rules = opt (types.listOf types.str) [ ];
      users.users = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              isSystemUser = opt types.bool false;
              group = opt types.str "";
              extraGroups = opt (types.listOf types.str) [ ];
              home = opt types.path "/var/empty";
              createHome = opt types.bool false;
              description = opt types.str "";
            };
          }
        );
        default = { };
      };
      users.groups = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              gid = opt (types.nullOr types.int) null;
              members = opt (types.listOf types.str) [ ];
            };
          }
        );
        default = { };
      };
      networking.enableIPv6 = opt types.bool true;
      networking.nftables.enable = opt types.bool false;
      networking.firewall = {
        enable = opt types.bool true;
        allowedTCPPorts = opt (types.listOf types.port) [ ];
        extraCommands = opt types.lines "";
      };
      environment.etc = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              text = opt (types.nullOr types.lines) null;
              source = opt (types.nullOr types.path) null;
              mode = opt types.str "symlink";
            };
          }
        );
        default = { };
      };
      nix.package = opt types.package pkgs.nix;
      # nixos/modules/config/nix.nix: freeform settings whose lists concatenate; a few declared.
      nix.settings = mkOption {
        type = types.submodule {
          freeformType =
            let
              atom = types.oneOf [ types.bool types.int types.float types.str types.path types.package ];
            in
            types.attrsOf (types.either atom (types.listOf atom));
          options.trusted-users = opt (types.listOf types.str) [ "root" ];
          options.trusted-public-keys = opt (types.listOf types.str) [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
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
