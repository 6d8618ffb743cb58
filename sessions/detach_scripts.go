package sessions

import (
	"strings"
)

// The shell scripts of detached jobs. They need only a POSIX sh and
// coreutils or busybox (mkdir, chmod, mv, cat, dd, wc, sleep, rm; setsid if
// there is one).
//
// All but the launcher run over exec channels, where the login shell, POSIX
// or not (csh, fish), gets `sh -c '<script>' sj ARGS...`: so each script is
// one line (csh allows no newline inside quotes) with no backslash (fish
// unescapes \\ and \' inside single quotes) and no `!` (csh history). What a
// script reports is on lines that start with a per-call nonce, so that noise
// from rc files (.bashrc printing on exec) is never taken for an answer.

// procStart sets st to an identity of process $1 that a recycled pid does not
// share: its start time in clock ticks since boot (field 22 of
// /proc/PID/stat, read with builtins only, so it costs no fork), or ps's
// start time where there is no /proc; pg is its process group (field 5). It
// fails for a process that is gone or a zombie (whose pid is not yet free, but
// which runs nothing). Word splitting is safe: the fields after the command
// name are numbers and a state letter.
const procStart = `sjst() { st=; pg=; if [ -d /proc/self ]; then [ -r "/proc/$1/stat" ] && read -r st < "/proc/$1/stat" && st=${st##*) } && set -- $st && [ "$1" != Z ] && [ "$1" != X ] && pg=$3 && st=proc:${20}; else st=$(ps -o lstart= -p "$1" 2>/dev/null) && set -- $st && st="ps:$*" && pg=$(ps -o pgid= -p "$1" 2>/dev/null) && pg=$((pg)); fi; [ "$st" != proc: ] && [ "$st" != ps: ] && [ -n "$st" ]; }`

// wrapperScript is the detached process itself, started by the launcher under
// setsid: sh -c WRAPPER sj DIR SHELL COMMAND MODE. MODE hup (no setsid on the
// host) ignores SIGHUP for the command, as nohup would, since the process
// keeps the session's terminal; the nohup program itself is not needed
// (busybox often lacks it). It traps INT and
// TERM so that a cancel, which signals the whole process group, stops the
// command but still leaves its exit status; then it records who it is (pid,
// process group, start identity) before the command starts, runs the command
// with the session's shell in the inherited cwd and environment, and writes
// the exit code atomically (code.tmp, then mv to code): a reader sees no code
// or the whole of it, and code appears only once all of out is written.
var wrapperScript = oneLine(
	`trap 'sjsig=1' INT TERM`,
	`[ "$4" = hup ] && trap '' HUP`,
	`d=$1 sjsh=$2 sjc=$3`,
	procStart,
	`sjst $$ || { st=unknown; pg=0; }`,
	`echo "$$ $pg $st" > "$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid" || exit 125`,
	`"$sjsh" -c "$sjc" < /dev/null >> "$d/out" 2>&1`,
	`echo $? > "$d/code.tmp"`,
	`mv -f "$d/code.tmp" "$d/code"`,
)

// followScript streams a spool's out from a byte offset, as it grows, until
// the job's exit code exists and everything before it is sent:
// sh -c FOLLOW sj NONCE DIR OFFSET PID START.
//
// stdout is "NONCE\n" (everything before it is rc-file noise), then the bytes
// of out from OFFSET on, exactly. One descriptor stays open on out: `cat <&3`
// reads it to its end and leaves the shared offset there, so no byte is sent
// twice and the script never re-reads the file. The initial skip uses whole
// dd reads (of a regular file, so never short). Each round checks for code
// before reading out, so that once code is seen the round's read gets all of
// out. (A failed `exec 3<` exits a POSIX shell, hence the -f check first.)
// A process that is gone (or whose pid now belongs to another process)
// without a code file ends the stream too. The verdict is one stderr line,
// after all the data: NONCE code N | gone | nospool | short SIZE.
//
// Between rounds it sleeps 0.2 s; 0.05 s after a round that sent a little;
// not at all after one that sent 64 KiB or more, so that a bulk stream's end
// is seen as soon as its last byte is sent rather than a poll later. What a
// round sent is the move of the descriptor's offset, read from
// /proc/$$/fdinfo/3 with builtins; where there is none, every round sleeps
// 0.2 s. The pacing decides only when the next round comes, never what a
// round sends. A fresh follow (OFFSET 0) skips the size check and its fork.
var followScript = oneLine(
	`n=$1 d=$2 off=$3 pid=$4 want=$5`,
	procStart,
	`[ -f "$d/out" ] || { echo "$n nospool" >&2; exit 0; }`,
	`exec 3< "$d/out"`,
	`if [ "$off" -gt 0 ]; then sz=$(wc -c < "$d/out") && sz=$((sz)); [ "$sz" -ge "$off" ] || { echo "$n short $sz" >&2; exit 0; }; fi`,
	`b=1048576 k=$((off/1048576)) r=$((off%1048576))`,
	`[ "$k" -gt 0 ] && dd bs=$b count=$k <&3 > /dev/null 2>&1`,
	`[ "$r" -gt 0 ] && dd bs=$r count=1 <&3 > /dev/null 2>&1`,
	`q=; [ -r "/proc/$$/fdinfo/3" ] && read -r x q < "/proc/$$/fdinfo/3"; [ "$q" -ge 0 ] 2>/dev/null || q=`,
	`echo "$n"`,
	`while :; do fin= gone=; if [ -f "$d/code" ]; then fin=1; elif kill -0 "$pid" 2>/dev/null && { [ "$want" = unknown ] || { sjst "$pid" && [ "$st" = "$want" ]; }; }; then :; elif [ -f "$d/code" ]; then fin=1; else gone=1; fi; cat <&3; if [ -n "$fin" ]; then read -r c < "$d/code"; echo "$n code $c" >&2; exit 0; fi; if [ -n "$gone" ]; then echo "$n gone" >&2; exit 0; fi; m=0; if [ -n "$q" ] && read -r x p < "/proc/$$/fdinfo/3" && [ "$p" -ge "$q" ] 2>/dev/null; then m=$((p-q)); q=$p; fi; if [ "$m" -ge 65536 ]; then :; elif [ "$m" -gt 0 ]; then sleep 0.05 2>/dev/null || sleep 1; else sleep 0.2 2>/dev/null || sleep 1; fi; done`,
)

// signalScript sends a signal to a detached job, after checking that its pid
// is still the process we started: sh -c SIGNAL sj NONCE PID PGID START SIG.
// It signals the whole process group when the process leads one (setsid),
// else only the process. It prints NONCE sent | gone | recycled | failed.
// dash wants `kill -s SIG -- -PGID`, busybox rejects the `--`.
var signalScript = oneLine(
	`n=$1 pid=$2 pgid=$3 want=$4 sig=$5`,
	procStart,
	`kill -0 "$pid" 2>/dev/null || { echo "$n gone"; exit 0; }`,
	`if [ "$want" = unknown ]; then :; elif sjst "$pid"; then [ "$st" = "$want" ] || { echo "$n recycled"; exit 0; }; else echo "$n gone"; exit 0; fi`,
	`if [ "$pgid" = "$pid" ]; then kill -s "$sig" -- "-$pgid" 2>/dev/null || kill -s "$sig" "-$pgid"; else kill -s "$sig" "$pid"; fi && echo "$n sent" || echo "$n failed"`,
)

// groupScript looks for processes left in a cancelled job's process group
// once the job's own process ended (a background child that ignores INT):
// sh -c GROUP sj NONCE PGID SIG. It prints NONCE empty, or sends SIG (unless
// SIG is 0) to the group and prints NONCE alive. With /proc it counts only
// live members (zombies that nobody reaps run nothing); without, kill -0.
// The group's number cannot be taken by a new process while the group has a
// member, so signalling it after its leader died is safe.
var groupScript = oneLine(
	`n=$1 pg=$2 sig=$3 live=`,
	`if [ -d /proc/self ]; then for f in /proc/[0-9]*/stat; do { read -r l < "$f"; } 2>/dev/null || continue; l=${l##*) }; set -- $l; if [ "$3" = "$pg" ] && [ "$1" != Z ]; then live=1; break; fi; done; else kill -0 -- "-$pg" 2>/dev/null && live=1; fi`,
	`if [ -z "$live" ]; then echo "$n empty"; exit 0; fi`,
	`[ "$sig" = 0 ] || kill -s "$sig" -- "-$pg" 2>/dev/null || kill -s "$sig" "-$pg"`,
	`echo "$n alive"`,
)

// removeScript removes a finished job's spool: sh -c REMOVE sj NONCE DIR.
// Deleting a large out file takes the file system a while (tens of ms for
// 100 MB), which the job's end need not wait for: the folder is renamed to
// a hidden .ID.removed beside it, which the orphan listing ignores, and
// deleted in the background; where the rename fails it is deleted at once.
// The background deletion takes every .ID.removed of the base: one that a
// dropped connection or a reboot interrupted would otherwise stay for good,
// unseen.
var removeScript = oneLine(
	`n=$1 d=$2 g="${2%/*}/.${2##*/}.removed"`,
	`if mv -f -- "$d" "$g" 2>/dev/null; then echo "$n removed"; rm -rf -- "${2%/*}"/.????????-????-????-????-????????????.removed < /dev/null > /dev/null 2>&1 & else rm -rf -- "$d" && echo "$n removed"; fi`,
)

// orphanScript lists the job folders of a spool base: sh -c ORPHANS sj NONCE
// BASE, where an empty BASE is the default base. It prints NONCE dir PATH,
// then NONCE job ID per folder that holds an out file (a job's spool, not
// something else that lives there).
var orphanScript = oneLine(
	`n=$1 d=$2`,
	`[ -n "$d" ] || d=${XDG_CACHE_HOME:-$HOME/.cache}/sshjobs`,
	`case $d in "~") d=$HOME;; "~/"*) d=$HOME/${d#"~/"};; /*) ;; *) d=$HOME/$d;; esac`,
	`cd -- "$d" 2>/dev/null || { echo "$n none"; exit 0; }`,
	`echo "$n dir $(pwd -P)"`,
	`for e in *; do [ -f "$e/out" ] && echo "$n job $e"; done`,
	`true`,
)

// findSpoolScript looks for one job's spool folder: sh -c FIND sj NONCE BASE
// JOB_ID (BASE as for orphanScript). It prints NONCE none without one;
// otherwise it waits, as the launcher does, up to 10 s for the pid file and
// prints NONCE ok PATH and NONCE pid PID PGID START. Without a pid file the
// command never ran (the wrapper writes it first): the folder is moved
// aside, so that a wrapper that is only very late finds no folder and does
// not run the command either, and removed; it prints NONCE unstarted. If the
// pid file appeared just before the move, the folder goes back and it is
// reported as found.
var findSpoolScript = oneLine(
	`n=$1 d=$2 j=$3`,
	`[ -n "$d" ] || d=${XDG_CACHE_HOME:-$HOME/.cache}/sshjobs`,
	`case $d in "~") d=$HOME;; "~/"*) d=$HOME/${d#"~/"};; /*) ;; *) d=$HOME/$d;; esac`,
	`[ -d "$d/$j" ] || { echo "$n none"; exit 0; }`,
	`i=0; until [ -f "$d/$j/pid" ] || [ "$i" -ge 200 ]; do sleep 0.05 2> /dev/null || sleep 1; i=$((i+1)); done`,
	`if [ ! -f "$d/$j/pid" ] && mv -- "$d/$j" "$d/.$j.unstarted" 2>/dev/null; then if [ -f "$d/.$j.unstarted/pid" ]; then mv -- "$d/.$j.unstarted" "$d/$j"; else rm -rf -- "$d/.$j.unstarted"; echo "$n unstarted"; exit 0; fi; fi`,
	`cd -- "$d/$j" 2>/dev/null || { echo "$n none"; exit 0; }`,
	`if [ -f pid ]; then echo "$n ok $(pwd -P)"; echo "$n pid $(cat pid)"; else echo "$n nostart $(pwd -P)"; fi`,
)

// oneLine joins complete shell commands into one line.
func oneLine(cmds ...string) string { return strings.Join(cmds, "; ") }

// shQuote quotes s as one shell word.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// execCommand is the exec request that runs script under sh with args, from
// any login shell.
func execCommand(script string, args ...string) string {
	var b strings.Builder
	b.WriteString("sh -c ")
	b.WriteString(shQuote(script))
	b.WriteString(" sj")
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shQuote(a))
	}
	return b.String()
}
