#!/bin/sh
# mpi_bundle.sh DIR [DRRL]: pack this machine's Open MPI (mpirun, orted, the
# plugins, help files, PMIx plugins), a drrl built with MPI and every shared
# library they load into DIR/ompi.tar.gz, with DIR/env.sh to set up the
# unpacked tree, so that `mpirun -np N drrl ...` runs on a machine of the
# same architecture and C library that has no Open MPI installed (no root,
# no network; the plugins that need a fabric library, UCX, libfabric,
# verbs, PSM, OpenSHMEM, are left out: shared memory and TCP remain).
# bench/mpi_speedup.sh uses it. Needs mpirun, ompi_info, ldd, tar and gzip
# (gzip, not xz: every Debian system has it, and it unpacks in a second).
#
#   bench/mpi_bundle.sh /tmp/bundle build/ui/drrl
#   # elsewhere: tar -C /tmp/m -xzf ompi.tar.gz && R=/tmp/m/ompi . ./env.sh
set -eu
dir=${1:?usage: mpi_bundle.sh DIR [DRRL]}
drrl=${2:-build/ui/drrl}
for t in mpirun ompi_info ldd tar gzip; do
    command -v "$t" >/dev/null 2>&1 || { echo "mpi_bundle.sh: no $t" >&2; exit 1; }
done
"$drrl" --version | grep -q 'MPI:' || { echo "mpi_bundle.sh: $drrl built without MPI" >&2; exit 1; }
path() { ompi_info --path "$1" --parsable | sed -n "s/^path:$1://p" | head -n 1; }
prefix=$(path prefix)
libdir=$(path libdir)
pkglibdir=$(path pkglibdir)
pkgdatadir=$(path pkgdatadir)
bindir=$(path bindir)
case "$libdir$pkglibdir$pkgdatadir$bindir" in *"$prefix"*) ;; *)
    echo "mpi_bundle.sh: Open MPI's directories are not under its prefix $prefix" >&2
    exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
R=$tmp/ompi
# the tree under OPAL_PREFIX=R mirrors the installed one under its prefix
L=$R${libdir#"$prefix"}
P=$R${pkglibdir#"$prefix"}
mkdir -p "$R/bin" "$L" "$P" "$R${pkgdatadir#"$prefix"}" "$R/pmix/lib"
cp "$bindir/orterun" "$bindir/orted" "$R/bin/"
ln -s orterun "$R/bin/mpirun"
cp "$drrl" "$R/bin/drrl"
cp -r "$pkgdatadir/." "$R${pkgdatadir#"$prefix"}/"
fabric='libuc[pstm]\.|libfabric|libibverbs|librdmacm|libpsm|libinfinipath|libnl-|liboshmem|libefa'
for f in "$pkglibdir"/*.so; do
    ldd "$f" | grep -Eq "$fabric|not found" || cp "$f" "$P/"
done
# PMIx (a library of its own in Debian) and its plugins, next to libpmix
pmix=$(ldd "$P"/mca_pmix_*.so 2>/dev/null | awk '/libpmix/ {print $3; exit}')
if [ -n "$pmix" ] && [ -d "$(dirname "$(readlink -f "$pmix")")/pmix" ]; then
    cp -r "$(dirname "$(readlink -f "$pmix")")/pmix" "$R/pmix/lib/"
fi
# every library these load, the C library itself aside
for f in "$R/bin/orterun" "$R/bin/orted" "$R/bin/drrl" "$P"/*.so "$R"/pmix/lib/pmix/*.so; do
    [ -e "$f" ] && ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
    while read -r l; do cp -L "$l" "$L/"; done
mkdir -p "$dir"
tar -C "$tmp" -czf "$dir/ompi.tar.gz" ompi
cat >"$dir/env.sh" <<EOF
# . env.sh with R set to the unpacked ompi/ of ompi.tar.gz (mpi_bundle.sh)
export OPAL_PREFIX=\$R
export PATH=\$R/bin:\$PATH
export LD_LIBRARY_PATH=\$R${libdir#"$prefix"}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export OMPI_MCA_mca_base_component_path=\$R${pkglibdir#"$prefix"}
export PMIX_MCA_mca_base_component_path=\$R/pmix/lib/pmix
export OMPI_MCA_plm=isolated OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
EOF
echo "$dir/ompi.tar.gz: $(du -k "$dir/ompi.tar.gz" | cut -f1) KiB ($(du -sk "$R" | cut -f1) KiB unpacked)"
