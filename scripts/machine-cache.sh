# Sourced by scripts/setup-test-env.sh and scripts/build-image.sh: MACHINE_CACHE, a cache shared
# by every checkout on this machine (a CI runner's fresh clones included), for the two things that
# are slow to make and depend on nothing in the checkout: the image's Debian base and the Helm
# binary. The checkout's own .cache/ starts empty on a fresh clone; this one survives it.
# A fresh machine still builds both (nothing is skipped when absent). Delete the directory to
# rebuild. Override with SPARK_SHUFFLE_AGENT_MACHINE_CACHE (e.g. a CI cache volume).
MACHINE_CACHE="${SPARK_SHUFFLE_AGENT_MACHINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-shuffle-agent}"
mkdir -p "$MACHINE_CACHE"
