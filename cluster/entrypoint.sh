#!/bin/sh
# The container's command (Docker ENTRYPOINT, Apptainer %runscript): the first word names the tool,
#   <image> train --env k1_kick   ->   python -m mjxmimic.train --env k1_kick
# and likewise play, export, sim2sim, view and tools.<name>; `python ...` runs the image's Python.
usage() {
    echo "usage: <image> train|play|export|sim2sim|view|tools.NAME [ARGS...]   (python -m mjxmimic.<tool> ARGS)"
    echo "       <image> python [ARGS...]                                     (the image's Python)"
}
cmd=${1:-}
case $cmd in
    train | play | export | sim2sim | view | tools.?*) shift; exec python -m "mjxmimic.$cmd" "$@" ;;
    python | python3) shift; exec python "$@" ;;
    "" | help | -h | --help) usage; exit 0 ;;
    *) echo "mjxmimic: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
esac
