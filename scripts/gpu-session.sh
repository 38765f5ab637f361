#!/usr/bin/env bash
# The prepared GPU session (issue 16; docs/PERFORMANCE.md, "Prepared GPU session").
#
#   bash scripts/gpu-session.sh pack        HERE, in the checkout that calls the device tool:
#                                           packs the zoo pair + corpus into .gpu/ (ignored),
#                                           stamps the commit, checks the 64 MiB carry limit
#   bash scripts/gpu-session.sh [ARGS...]   THERE, on the bare GPU host, as ONE `run` command:
#                                           makes the tree importable, unpacks the zoo, runs
#                                           `specoracle bench --device cuda --all` under
#                                           `timeout`, and leaves in $OUT: bench-all.json,
#                                           bench-all-logs.tar.xz, nvidia-smi.txt (and the
#                                           trained DFlash drafter in <= 3 parts, if trained:
#                                           cat dflash-gpu.tar.part-* | tar -x)
#
# ARGS go to `specoracle bench --all` (e.g. --only llm-cuda, --with-dflash-train, --quick).
# Environment: BUDGET (seconds for the bench, default 500), BENCH_TIMEOUT (hard kill, default
# BUDGET + 40). The device tool's `run` allows 600 s per command: keep BENCH_TIMEOUT <= 560.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
LIMIT=$((64 * 1024 * 1024))

pack() {
    local zoo
    zoo="$(python3 -c 'from specoracle.fastpath.models.zoo.registry import zoo_dir; print(zoo_dir())')" || exit 2
    for d in code-target code-draft corpus; do
        [ -e "$zoo/$d" ] || { echo "error: $zoo/$d is missing (specoracle zoo install)" >&2; exit 2; }
    done
    mkdir -p .gpu                       # ignored (.gitignore): it travels only through `carry`
    ZOO="$zoo" python3 - <<'EOF' || exit 2
import os, tarfile
zoo = os.environ["ZOO"]
with tarfile.open(".gpu/zoo.tar.xz", "w:xz", preset=6) as tar:
    for d in ("code-target", "code-draft", "corpus"):
        tar.add(os.path.realpath(os.path.join(zoo, d)), arcname=d)   # follows the zoo's links
EOF
    { git rev-parse HEAD; git status --short | grep -c . | sed 's/^/uncommitted files: /'; } > .gpu/commit.txt
    local tree gpu total
    tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -L -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
    [ -d shared ] && tree=$((tree + $(du -sbL shared | cut -f1)))
    gpu=$(du -sbL .gpu | cut -f1)
    total=$((tree + gpu))
    echo "travels: tree $((tree / 1048576)) MiB + .gpu $((gpu / 1048576)) MiB = $((total / 1048576)) MiB (limit 64 MiB)"
    if [ "$total" -gt "$LIMIT" ]; then
        echo "error: over the device tool's 64 MiB limit" >&2
        exit 1
    fi
    echo 'next: run(command="bash scripts/gpu-session.sh", carry=[".gpu"], timeout_s=600)'
}

session() {
    local out="${OUT:-$here/out}" work=/tmp/specoracle-session
    local budget="${BUDGET:-500}"
    local hard="${BENCH_TIMEOUT:-$((budget + 40))}"
    mkdir -p "$out" "$work"
    export PYTHONUNBUFFERED=1
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$out/nvidia-smi.txt"
    # the tree is a plain copy (no pip install there): the package folders are mapped by links
    for pkg in reference fastpath proofs; do
        [ -e "specoracle/$pkg" ] || ln -s "../$pkg" "specoracle/$pkg"
    done
    export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
    if [ -f .gpu/zoo.tar.xz ]; then
        python3 -c "import tarfile; tarfile.open('.gpu/zoo.tar.xz').extractall('$work/zoo', filter='data')" \
            && export SPECORACLE_ZOO="$work/zoo"
    else
        echo "warning: no .gpu/zoo.tar.xz (run 'bash scripts/gpu-session.sh pack' here and carry .gpu): the zoo stages will be skipped"
    fi
    python3 -c "import torch, specoracle.fastpath.bench.session as s; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" \
        || { echo "error: the tree does not import on this host"; exit 1; }
    timeout -k 10 "$hard" python3 -m specoracle bench --device cuda --all --budget "$budget" \
        --json "$work/bench-all.json" "$@"
    echo "bench exit status $?"
    # what comes back: at most 8 files of <= 16 MiB in $OUT, so logs travel as one archive
    cp "$work/bench-all.json" "$out/" 2>/dev/null || echo "no bench-all.json was written"
    python3 - "$work" "$out" <<'EOF'
import os, sys, tarfile
work, out = sys.argv[1], sys.argv[2]
src = os.path.join(work, "bench-all.work")
if os.path.isdir(src):
    with tarfile.open(os.path.join(out, "bench-all-logs.tar.xz"), "w:xz") as tar:
        for name in sorted(os.listdir(src)):
            if name != "dflash-gpu":
                tar.add(os.path.join(src, name), arcname=name)
EOF
    local dft="$work/bench-all.work/dflash-gpu"
    if [ -d "$dft" ]; then      # the trained drafter: metrics + config, the weights if <= 45 MiB
        local files=(metrics.json dflash_config.json)
        local size
        size=$(stat -c %s "$dft/dflash.safetensors" 2>/dev/null || echo 0)
        if [ "$size" -gt 0 ] && [ "$size" -le $((45 * 1048576)) ]; then
            files+=(dflash.safetensors)
        else
            echo "dflash-gpu: weights ($size bytes) not brought back (over 45 MiB or absent)"
        fi
        (cd "$dft" && ls "${files[@]}" 2>/dev/null | tar -cf - -T -) \
            | split -b 15M -a 1 - "$out/dflash-gpu.tar.part-"
    fi
    ls -l "$out"
}

case "${1:-}" in
    pack) pack ;;
    *) session "$@" ;;
esac
