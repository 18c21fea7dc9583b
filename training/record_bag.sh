#!/usr/bin/env bash
# Record the topics SelfDC fine-tunes on, next to a running completion node (or any driver set).
#
#   training/record_bag.sh <output_dir> [--ns /robot] [--compressed] [--tof] [--storage sqlite3|mcap]
#                          [-- extra ros2 bag record args]
#
# Records (relative to the namespace) camera/image (or camera/image/compressed), camera/camera_info,
# lidar/points (or tof/depth) and /tf_static (default storage mcap; Humble needs
# ros-humble-rosbag2-storage-mcap for it, or pass --storage sqlite3). Then fine-tune with:
#   python training/train.py --config config/finetune_rosbag.yaml bag=<output_dir> init=<checkpoint.pt>
# (with --ns, set data.train.image_topic etc. and the same for data.val to the namespaced names).
set -euo pipefail

usage() { sed -n '3,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
[[ $# -ge 1 ]] || usage 2
[[ $1 == -h || $1 == --help ]] && usage 0
out=$1; shift
ns="" image=camera/image sparse=lidar/points storage=mcap extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --ns) ns=${2%/}; shift 2 ;;
    --compressed) image=camera/image/compressed; shift ;;
    --tof) sparse=tof/depth; shift ;;
    --storage) storage=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done
[[ -e $out ]] && { echo "error: $out exists; ros2 bag record never overwrites a recording" >&2; exit 2; }
command -v ros2 >/dev/null || { echo "error: ros2 not found: source your ROS 2 setup.bash first" >&2; exit 2; }

topics=("$ns/$image" "$ns/camera/camera_info" "$ns/$sparse" /tf_static)
echo "recording ${topics[*]} -> $out (Ctrl-C to stop)"
exec ros2 bag record -s "$storage" -o "$out" "${topics[@]}" "${extra[@]}"
