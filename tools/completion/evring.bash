# bash completion for evring (tools/README.md, "Shell completion").
#
# Completes verbs, each verb's flags, the values of flags that take one of a fixed set (or a file
# name), and bus names for BUS arguments, read from `evring ls --json` of the evring being
# completed. Installed as share/bash-completion/completions/evring; to try it from a checkout:
#   source tools/completion/evring.bash
#
# tests/tools/completion_test.cpp checks that every flag `evring VERB --help` lists is completed
# here: a flag added to a verb must be added below too.

_evring_verbs="create ls rm stat publish tail inspect top bench exporter"
_evring_bench_modes="throughput latency peers"

# Flags that take a value, for a verb ("bench-MODE" for the modes of bench).
_evring_value_flags() {
  case "$1" in
    create)
      echo "--partitions --slots --slot-size --overflow --mode --max-consumers --max-producers" \
           "--dedup-window --dedup-bits-per-key" ;;
    publish)
      echo "--type --producer --entity --domains --data --data-file --correlation --causation" \
           "--idempotency-key --classification --revision --full-timeout-ms" ;;
    tail) echo "--consumer --from --filter --count --timeout-ms --wait --format" ;;
    inspect) echo "--partition --seq --last --format" ;;
    top) echo "--interval-ms --iterations" ;;
    exporter) echo "--listen" ;;
    bench-throughput)
      echo "--payload --seconds --runs --cpus --partitions --producers --consumers --batch" \
           "--dedup-bits-per-key --against --clock" ;;
    bench-latency) echo "--payload --seconds --runs --cpus --rate --wait --hgrm --clock" ;;
    bench-peers) echo "--cpus --seconds --runs --payload --slot-bytes --span-bytes --cases" ;;
  esac
}

# Flags without a value.
_evring_bool_flags() {
  case "$1" in
    ls | stat | inspect) echo "--help --json" ;;
    create) echo "--help --huge-pages" ;;
    publish) echo "--help --jsonl --exclusive" ;;
    bench-throughput) echo "--help --no-peers --json --huge-pages --exclusive --dedup" ;;
    bench-latency) echo "--help --no-peers --json --huge-pages --exclusive" ;;
    bench-peers) echo "--help --quick --json" ;;
    *) echo "--help" ;;
  esac
}

# The fixed values of a flag; FILE for a file name; nothing when the value is free text.
_evring_flag_values() {
  case "$1" in
    --overflow) echo "reject overwrite" ;;
    --from) echo "earliest latest committed" ;;
    --format) echo "json table cloudevents" ;;
    --wait) echo "spin yield block" ;;
    --clock) echo "auto tsc realtime" ;;
    --classification) echo "public internal confidential restricted" ;;
    --cases)
      echo "pingpong bare_spsc bare_spsc_slot bare_spsc_span boost_mq boost_spsc_shm moodycamel_cq" \
           "moodycamel_rwq" ;;
    --against)
      echo "bare_spsc bare_spsc_slot bare_spsc_span boost_mq boost_spsc_shm moodycamel_cq" \
           "moodycamel_rwq" ;;
    --data-file | --hgrm) echo "FILE" ;;
  esac
}

# What the positional arguments of a verb are: one bus, buses, or none.
_evring_positionals() {
  case "$1" in
    rm | stat | publish | tail | inspect | top) echo "bus" ;;
    exporter) echo "buses" ;;
  esac
}

# COMPREPLY from `compgen ARGS...`, one word per line (file names may hold blanks).
_evring_reply() {
  mapfile -t COMPREPLY < <(compgen "$@")
}

_evring_takes_value() {  # KEY FLAG
  local f
  for f in $(_evring_value_flags "$1"); do
    [[ $f == "$2" ]] && return 0
  done
  return 1
}

# Names of the buses this evring sees: the "name" of each object of `evring ls --json`.
_evring_buses() {
  local evring="${COMP_WORDS[0]:-evring}"
  "$evring" ls --json 2>/dev/null | grep -o '"name":"[^"]*"' | sed -e 's/^"name":"//' -e 's/"$//'
}

_evring() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev=""
  ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD - 1]}"
  COMPREPLY=()

  # The verb, the bench mode and how many positionals precede the word being completed.
  local verb="" mode="" key="" npos=0 i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    if [[ -z $verb ]]; then
      [[ $w != -* ]] && verb="$w" && key="$w"
      continue
    fi
    if [[ $verb == bench && -z $mode && $w != -* ]]; then
      mode="$w"
      key="bench-$w"
      continue
    fi
    if [[ $w == --*=* ]]; then
      continue
    elif [[ $w == -* ]]; then
      if _evring_takes_value "$key" "$w"; then
        # Its value: the next word, or the two after it when '=' split `--flag=value`.
        if [[ ${COMP_WORDS[i + 1]} == "=" ]]; then ((i += 2)); else ((i += 1)); fi
      fi
      continue
    fi
    ((npos++))
  done

  if [[ -z $verb ]]; then
    _evring_reply -W "$_evring_verbs --help --version" -- "$cur"
    return 0
  fi
  if [[ $verb == bench && -z $mode ]]; then
    _evring_reply -W "$_evring_bench_modes --help" -- "$cur"
    return 0
  fi

  # The value of a flag: `--flag VALUE`, `--flag=VALUE` split by COMP_WORDBREAKS, or whole.
  local flag="" prefix=""
  if [[ $prev == "=" ]] && ((COMP_CWORD >= 2)); then
    flag="${COMP_WORDS[COMP_CWORD - 2]}"
  elif [[ $cur == --*=* ]]; then
    flag="${cur%%=*}"
    prefix="$flag="
    cur="${cur#*=}"
  elif [[ $prev == -* ]]; then
    flag="$prev"
  fi
  if [[ -n $flag ]] && _evring_takes_value "$key" "$flag"; then
    local values
    values="$(_evring_flag_values "$flag")"
    if [[ $values == FILE ]]; then
      _evring_reply -f -- "$cur"
    elif [[ -n $values ]]; then
      _evring_reply -W "$values" -- "$cur"
    fi
    if [[ -n $prefix ]]; then
      for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]="$prefix${COMPREPLY[i]}"; done
    fi
    return 0
  fi

  if [[ $cur == -* ]]; then
    _evring_reply -W "$(_evring_value_flags "$key") $(_evring_bool_flags "$key")" -- "$cur"
    return 0
  fi
  case "$(_evring_positionals "$key")" in
    bus) ((npos == 0)) && _evring_reply -W "$(_evring_buses)" -- "$cur" ;;
    buses) _evring_reply -W "$(_evring_buses)" -- "$cur" ;;
  esac
  return 0
}

complete -F _evring evring
