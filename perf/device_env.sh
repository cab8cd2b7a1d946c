# Source on the device machine (no registry there), from the repository root:
#   source perf/device_env.sh
# Installs the wheels carried in .whl/ (the harness's pins the device image lacks or has in
# another version; see perf/results/README.md for how .whl/ is filled) into /tmp/site, maps the
# built-in plugins folder to its import name, and puts both and the repository on PYTHONPATH.
set -e
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
mkdir -p /tmp/plugin-map
ln -sfn "$PWD/plugins" /tmp/plugin-map/cxr_harness_plugins
export PYTHONPATH="/tmp/site:$PWD:/tmp/plugin-map:$PWD/perf"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
set +e
