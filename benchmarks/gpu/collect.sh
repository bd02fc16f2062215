#!/usr/bin/env bash
# Here, after a call of benchmarks/gpu/issue16.sh: unpack issue16-results.tgz from the folder the device tool put
# it in (its files_at), print each stage's last lines, and copy every artifact to where the book reads it. Nothing
# is committed: look at `git status`, re-execute the chapters whose artifacts changed (make execute CHAPTER=0N),
# then commit with the hardware named.
#   bash benchmarks/gpu/collect.sh /work/.device/<...>/files
#   DRY=1 bash benchmarks/gpu/collect.sh /tmp/i16     # say what would be copied, copy nothing
set -euo pipefail
DRY=${DRY:-0}
SRC=${1:?give the folder holding issue16-results.tgz}
cd "$(dirname "$0")/../.."
DEST=$(mktemp -d /tmp/issue16-XXXX)
tar xzf "$SRC/issue16-results.tgz" -C "$DEST"
echo "unpacked into $DEST"; cat "$DEST/machine.txt" 2>/dev/null || true
for log in "$DEST"/*/log.txt; do echo "--- ${log#$DEST/}"; tail -5 "$log"; done
copy() {  # copy SOURCE DEST_FOLDER [NEW_NAME]
  [ -e "$1" ] || return 0
  local target="$2${3:+/$3}"
  if [ "$DRY" = 1 ]; then echo "would copy ${1#$DEST/} -> $target"; return 0; fi
  mkdir -p "$2" && cp -r "$1" "$target" && echo "copied ${1#$DEST/} -> $target"
}
copy "$DEST/capacity/capacity-gpu.json" chapters/artifacts/05_kde_capacity/
copy "$DEST/capacity/benchmark-gpu.json" chapters/artifacts/05_kde_capacity/
for f in "$DEST"/step/icl_step-cuda-*.json "$DEST"/retrieval/retrieval-cuda-*.json; do copy "$f" benchmarks/results/; done
if [ -d "$DEST/seeds/paper-scale" ]; then copy "$DEST/seeds/paper-scale" chapters/artifacts/02_icl_energy/; fi
for n in 02 05 06; do
  record="$DEST/paper-$n/chapter.json"
  slug=$(basename chapters/${n}_*.md .md)
  copy "$record" "chapters/artifacts/$slug" run-paper-cuda.json
done
git status --short chapters/artifacts benchmarks/results
