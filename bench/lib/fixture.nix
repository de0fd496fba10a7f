# The benchmark's store paths, built by real Nix without nixpkgs (builder
# /bin/sh, so builds need `--option sandbox false`). `small` is a list of n
# small directories; path i refers to paths i/2 and i/3, so the closure has
# real references but little depth (builds run in parallel). `large` and
# `huge` are one file each of random bytes (incompressible, like real NARs).
# `wide` refers to every small path: a 300-reference narinfo, and with the
# small paths the closure `nix copy` fetches in the closure-copy runs.
{ n ? 300, largeMb ? 256, hugeMb ? 4096, salt ? "eris-bench-1" }:
let
  sys = builtins.currentSystem;
  mk = name: script: derivation {
    inherit name salt;
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  ref = i: if i > 0 then toString (builtins.elemAt small i) else "";
  mkSmall = i: mk "eris-bench-small-${toString i}" ''
    /bin/mkdir -p $out/share/doc
    echo ${ref (i / 2)} > $out/refs
    echo ${ref (i / 3)} >> $out/refs
    echo 'small path ${toString i}' > $out/share/doc/README
    /usr/bin/head -c ${toString (100 + (i * 97) - (i * 97) / 3000 * 3000)} /dev/zero > $out/share/data
    /bin/ln -s ../refs $out/share/refs-link
  '';
  small = builtins.genList mkSmall n;
  blob = name: mb: mk name "/bin/dd if=/dev/urandom of=$out bs=1M count=${toString mb} iflag=fullblock status=none";
in {
  inherit small;
  wide = mk "eris-bench-wide-${toString n}" ''
    /bin/mkdir -p $out
    echo ${builtins.concatStringsSep " " (map toString small)} > $out/refs
  '';
  large = blob "eris-bench-large-${toString largeMb}M" largeMb;
  huge = blob "eris-bench-huge-${toString hugeMb}M" hugeMb;
}
