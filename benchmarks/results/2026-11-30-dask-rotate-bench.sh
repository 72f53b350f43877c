#!/bin/bash
# Paired rotation runs for 2026-11-30-dask-rotate-seaweedfs.md: one machine vs --dask-local 2,
# alternating the keys a.key -> b.key, b.key -> a.key on one prefix.
# Usage (in a folder with s3.env from `ssec-transfer server --env-file s3.env`, a.key, b.key
# and s3://bench/r/ uploaded under a.key):  ./bench.sh auto|stream PAIRS
set -e
source s3.env
export XDG_DATA_HOME=$PWD/xdg/data XDG_CACHE_HOME=$PWD/xdg/cache XDG_STATE_HOME=$PWD/xdg/state
export SSEC_TRANSFER_CONFIG=/dev/null
ST=${SSEC_TRANSFER:-ssec-transfer}
VIA=$1; PAIRS=$2
from=a.key; to=b.key
for i in $(seq 1 "$PAIRS"); do
  for mode in local dask; do
    extra=""; [ $mode = dask ] && extra="--dask-local 2"
    $ST rotate s3://bench/r/ --recursive --key-file $from --new-key-file $to --via "$VIA" \
        --json $extra 2>>err.log | tail -1 | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('$VIA', '$mode', $i, d['objects'], d['ok'], d['failed'], d['bytes'], d['seconds'], d['mib_per_s'])"
    t=$from; from=$to; to=$t
  done
done
