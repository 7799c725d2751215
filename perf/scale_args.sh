# Sourced by perf/scale.sh and perf/scale-vm.sh, so that both measure the same thing: the
# relay's and msrpd-bench's arguments for a scale run of PAIRS pairs.
#
# In: PAIRS, RATE, DURATION, WORKERS; SETUP_TIMEOUT if set.
# Out: SETUP_TIMEOUT, LOCAL_ADDRS, RELAY_FLAGS, BENCH_FLAGS (word-split on purpose).
#
# `--topology full`: both ends of every pair AUTH (RFC 4976 §5), so every held connection
# is an authenticated one with a session, as the measurement claims. An AUTH is also a
# successful request, so the relay's probation (§6.1: a connection with none after 30 s is
# closed) does not close pairs waiting for traffic however long the set-up takes.
#
# Set-up budget: msrpd-bench's 30 s default (9,800 pairs take about 6 s on the 2-core dev
# host), one second per 250 pairs above 10,000.
SETUP_TIMEOUT=${SETUP_TIMEOUT:-$(( PAIRS > 10000 ? PAIRS / 250 : 30 ))}
# One source address per 25,000 connections (127.0.0.1, 127.0.0.2, ...): one address has
# only about 28,000 ephemeral ports towards the relay's one port.
LOCAL_ADDRS=$(seq -s, -f '127.0.0.%g' 1 $(( (2 * PAIRS + 24999) / 25000 )))
# Sessions for the longest Expires the relay grants (3600 s) instead of its 600 s default:
# under emulation 50,000 pairs took 727 s to set up (2026-12-06), and by the time traffic
# started the first pairs' sessions had expired, so every SEND through them was rightly
# answered 481 (msrpd-bench does not refresh its AUTH).
RELAY_FLAGS="--cores $WORKERS --log-level warn --admin off --max-connections 1000000 --max-connections-per-ip 1000000 \
--expires-default 3600"
BENCH_FLAGS="--threads $WORKERS --topology full --pairs $PAIRS --rate $RATE --size 1024 --hold 2 \
--warmup 1 --duration $DURATION --drain 10 --setup-timeout $SETUP_TIMEOUT --local-addrs $LOCAL_ADDRS --json"
