package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/jobs"
)

// BenchmarkTable measures the built binary from outside, as a user sees it,
// side by side with OpenSSH's client on one loopback sshd (scripts/bench
// runs it and prints the ratios):
//
//	warm     `true` five ways: ssh_run over MCP stdio with sshjobs serve
//	         in-process (mcp) and through the daemon (mcp-daemon), the same
//	         MCP session spoken directly on the daemon's socket (mcp-direct:
//	         against mcp-daemon, the front's forwarding), `sshjobs run HOST -- true` as a new process
//	         with a warm daemon (cli), and `ssh HOST true` over an open
//	         ControlMaster (controlmaster); beside them the npm ssh-mcp
//	         server's session and exec (sshMCPVariants, when installed)
//	cold     `sshjobs run --no-daemon HOST -- true` (connect, start the
//	         shell, run) and plain `ssh HOST true`
//	startup  `sshjobs serve` start to its first tools/list answer, the
//	         daemon already running (idle-MiB: the daemon's RSS), and cold
//	output   90 MB through a shell job, a detached job, plain `ssh` and
//	         `ssh -tt`: MB/s, and the server's RSS before, at its peak
//	         (VmHWM) and after
//	concurrency  200 jobs of 1 MiB across 20 sessions on 4 sshds
//
// Each round runs every variant of a row once (the load of a shared machine
// falls on all alike); times are medians in ms. Memory is read from /proc of
// the server process. Compare ratios within one run.
func BenchmarkTable(b *testing.B) {
	// scripts/bench sets SSHJOBS_REQUIRE_SSHD: a table of zeros is no answer.
	skip := b.Skip
	if os.Getenv("SSHJOBS_REQUIRE_SSHD") == "1" {
		skip = b.Fatal
	}
	if !sshtest.HaveOpenSSH() {
		skip("needs OpenSSH's sshd")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		skip("needs the OpenSSH client")
	}
	// A clean HOME: this machine's root .bashrc runs pyenv for every ssh exec.
	srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
	// Its own build, in its own folder: the run takes minutes, and the
	// shared test binary folder is not safe from other processes that long.
	// Built as the README says: static, without cgo (a dynamically linked
	// binary takes about 0.5 ms longer to start).
	bin := filepath.Join(b.TempDir(), "sshjobs")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	env := binaryEnv(b, srv)
	denv := daemonEnv(b, srv)
	b.Cleanup(func() { sshjobsCmd(b, bin, denv, "daemon", "stop", "-wait") })
	sshArgs := func(args ...string) []string { return append([]string{"-F", srv.SSHConfig}, args...) }

	// Warm: each round runs every variant once, so that the machine's load
	// falls on all of them alike.
	b.Run("warm", func(b *testing.B) {
		inproc := startServe(b, bin, env)
		viaDaemon := startServe(b, bin, denv)
		direct := dialServe(b, bin, denv, srv)
		sock := controlMaster(b, srv)
		interleave(b, append([]variant{
			{"mcp", func() { benchRunTrue(b, inproc, srv.Alias) }},
			{"mcp-daemon", func() { benchRunTrue(b, viaDaemon, srv.Alias) }},
			{"mcp-direct", func() { benchRunTrue(b, direct, srv.Alias) }},
			{"cli", func() {
				if code, _ := sshjobsCmd(b, bin, denv, "run", srv.Alias, "--", "true"); code != 0 {
					b.Fatalf("sshjobs run: exit %d", code)
				}
			}},
			{"controlmaster", func() {
				if err := exec.Command("ssh", sshArgs("-o", "ControlMaster=no", "-o", "ControlPath="+sock, srv.Alias, "true")...).Run(); err != nil {
					b.Fatal(err)
				}
			}},
		}, sshMCPVariants(b, srv)...))
	})
	b.Run("cold", func(b *testing.B) {
		interleave(b, []variant{
			{"sshjobs", func() {
				if code, _ := sshjobsCmd(b, bin, env, "run", "--no-daemon", srv.Alias, "--", "true"); code != 0 {
					b.Fatalf("sshjobs run: exit %d", code)
				}
			}},
			{"ssh", func() {
				if err := exec.Command("ssh", sshArgs("-o", "ControlPath=none", srv.Alias, "true")...).Run(); err != nil {
					b.Fatal(err)
				}
			}},
		})
	})
	// Start-up: each round times a start with the daemon running (warm),
	// stops the daemon, and times a start that starts it (cold).
	b.Run("startup", func(b *testing.B) {
		startServe(b, bin, denv).close() // the daemon runs
		var warm, cold []time.Duration
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			startServe(b, bin, denv).close()
			warm = append(warm, time.Since(start))
			sshjobsCmd(b, bin, denv, "daemon", "stop", "-wait")
			start = time.Now()
			startServe(b, bin, denv).close()
			cold = append(cold, time.Since(start))
		}
		for name, d := range map[string][]time.Duration{"warm": warm, "cold": cold} {
			slices.Sort(d)
			b.ReportMetric(float64(d[len(d)/2].Microseconds())/1000, name+"-ms")
		}
		time.Sleep(benchSettle) // idle: what the daemon holds doing nothing
		b.ReportMetric(rssMiB(daemonPID(b, bin, denv), "VmRSS"), "idle-MiB")
	})
	// 90 MB of output in lines of 100 bytes, as a build log would be; each
	// round runs all four.
	b.Run("output", func(b *testing.B) {
		const outBytes = 90_000_000
		bigCmd := fmt.Sprintf("yes %s | head -c %d", strings.Repeat("x", 99), outBytes)
		// mem holds the server's RSS before the job, its peak, and what
		// stays benchSettle after it, per kind of job (the highest of the
		// rounds).
		mem := map[string]*[3]float64{"shell": {}, "detached": {}}
		job := func(kind string, detach bool) func() time.Duration {
			return func() time.Duration {
				s := startServe(b, bin, env)
				defer s.close()
				benchRunTrue(b, s, srv.Alias) // connected, shell started
				m := mem[kind]
				m[0] = max(m[0], rssMiB(s.pid(), "VmRSS"))
				start := time.Now()
				v := s.run(b, map[string]any{"host": srv.Alias, "command": bigCmd, "detach": detach, "timeout_s": 300})
				took := time.Since(start)
				if v.State != jobs.StateSucceeded || v.OutputBytes != outBytes {
					b.Fatalf("%s: %d bytes (%s)", v.State, v.OutputBytes, v.Error)
				}
				m[1] = max(m[1], rssMiB(s.pid(), "VmHWM"))
				time.Sleep(benchSettle)
				m[2] = max(m[2], rssMiB(s.pid(), "VmRSS"))
				return took
			}
		}
		ssh := func(args ...string) func() time.Duration {
			return func() time.Duration {
				start := time.Now()
				if err := exec.Command("ssh", sshArgs(append(args, srv.Alias, bigCmd)...)...).Run(); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
		}
		names := []string{"shell", "detached", "ssh", "ssh-tt"}
		// -tt with stdin from /dev/null: the PTY is there, nothing types.
		fs := []func() time.Duration{job("shell", false), job("detached", true), ssh(), ssh("-tt")}
		d := make([][]time.Duration, len(fs))
		b.ResetTimer()
		for range b.N {
			for i, f := range fs {
				d[i] = append(d[i], f())
			}
		}
		for i, name := range names {
			slices.Sort(d[i])
			b.ReportMetric(outBytes/d[i][len(d[i])/2].Seconds()/1e6, name+"-MB/s")
		}
		for _, kind := range []string{"shell", "detached"} {
			b.ReportMetric(mem[kind][0], kind+"-before-MiB")
			b.ReportMetric(mem[kind][1], kind+"-peak-MiB")
			b.ReportMetric(mem[kind][2], kind+"-after-MiB")
		}
	})
	b.Run("concurrency", func(b *testing.B) { benchConcurrency(b, bin, false) })
	b.Run("goroutines", func(b *testing.B) { benchConcurrency(b, bin, true) })
}

// variant is one side of a side-by-side measurement.
type variant struct {
	name string
	run  func()
}

// interleave runs each variant once (a warm-up), then b.N rounds of all of
// them, and reports each one's median as NAME-ms. Every other round runs
// them in reverse order: what a variant leaves behind (a process exiting, a
// collection) does not always fall on the same next one (it cost the one
// after the in-process server 0.5 ms at the median).
func interleave(b *testing.B, vs []variant) {
	for _, v := range vs {
		v.run()
	}
	d := make([][]time.Duration, len(vs))
	b.ResetTimer()
	for round := range b.N {
		for k := range vs {
			i := k
			if round%2 == 1 {
				i = len(vs) - 1 - k
			}
			start := time.Now()
			vs[i].run()
			d[i] = append(d[i], time.Since(start))
		}
	}
	for i, v := range vs {
		slices.Sort(d[i])
		b.ReportMetric(float64(d[i][len(d[i])/2].Microseconds())/1000, v.name+"-ms")
	}
}

// serveProc is `sshjobs serve` started as an MCP client starts it.
type serveProc struct {
	cmd *exec.Cmd
	cs  *mcp.ClientSession
}

// startServe starts the binary and returns once its first tools/list is
// answered.
func startServe(b *testing.B, bin string, env []string) *serveProc {
	b.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = io.Discard // its log: not part of the table
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).
		Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	s := &serveProc{cmd: cmd, cs: cs}
	b.Cleanup(s.close)
	return s
}

// dialServe is an MCP session with the running daemon of bin and env (the
// one startServe started) on its socket, without a front: what `sshjobs
// serve` would forward, as the front would say hello.
func dialServe(b *testing.B, bin string, env []string, srv *sshtest.Server) *serveProc {
	b.Helper()
	_, out := sshjobsCmd(b, bin, env, "daemon", "status", "-json")
	var st daemonStatus
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&st); err != nil || st.Socket == "" {
		b.Fatalf("daemon status: %q", out)
	}
	cwd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	h := clientHello{Build: st.Build, Env: append(os.Environ(), env...), Cwd: cwd, SSHConfig: srv.SSHConfig}
	c, err := dialMCP(st.Socket, &h, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).
		Connect(context.Background(), &mcp.IOTransport{Reader: c, Writer: c}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cs.ListTools(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	s := &serveProc{cs: cs}
	b.Cleanup(s.close)
	return s
}

func (s *serveProc) pid() int { return s.cmd.Process.Pid }

func (s *serveProc) close() { s.cs.Close() }

func (s *serveProc) run(b *testing.B, args map[string]any) *jobView {
	res, err := s.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ssh_run", Arguments: args})
	if err != nil {
		b.Fatal(err)
	}
	var v jobView
	raw, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(raw, &v); err != nil || v.JobID == "" {
		b.Fatalf("ssh_run %v: %s", args, text(res))
	}
	// Detached or slow: follow the job to its end.
	for !v.State.Final() {
		res, err = s.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ssh_job", Arguments: map[string]any{"job_id": v.JobID, "wait_s": 300, "offset": v.OutputBytes}})
		if err != nil {
			b.Fatal(err)
		}
		raw, _ = json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(raw, &v); err != nil {
			b.Fatalf("ssh_job: %s", text(res))
		}
	}
	return &v
}

func benchRunTrue(b *testing.B, s *serveProc, host string) {
	if v := s.run(b, map[string]any{"host": host, "command": "true"}); v.State != jobs.StateSucceeded {
		b.Fatalf("true: %s %s", v.State, v.Error)
	}
}

// controlMaster opens a ControlMaster to srv for the benchmark and returns
// its socket once it answers.
func controlMaster(b *testing.B, srv *sshtest.Server) string {
	f, err := os.CreateTemp(srv.Dir, "cm")
	if err != nil {
		b.Fatal(err)
	}
	sock := f.Name()
	f.Close()
	os.Remove(sock)
	master := exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlMaster=yes", "-o", "ControlPath="+sock, "-N", srv.Alias)
	if err := master.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlPath="+sock, "-O", "exit", srv.Alias).Run()
		master.Wait()
	})
	// Until the master is up, ssh quietly connects on its own.
	for deadline := time.Now().Add(10 * time.Second); exec.Command("ssh", "-F", srv.SSHConfig, "-o", "ControlPath="+sock, "-O", "check", srv.Alias).Run() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("ControlMaster did not come up")
		}
	}
	return sock
}

// rssMiB reads a VmRSS/VmHWM line of /proc/pid/status, in MiB.
func rssMiB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == field {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// procCounts returns a process's open descriptors and threads.
func procCounts(pid int) (fds, threads int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return len(ents), threads
}

// fdTargets maps a process's descriptors to what they are open on.
func fdTargets(pid int) map[string]string {
	m := map[string]string{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		m[e.Name()], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return m
}

func daemonPID(b *testing.B, bin string, env []string) int {
	_, out := sshjobsCmd(b, bin, env, "daemon", "status", "-json")
	var st struct {
		PID int `json:"pid"`
	}
	// One daemon per build and configuration: the first line is ours.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&st); err != nil || st.PID == 0 {
		b.Fatalf("daemon status: %q", out)
	}
	return st.PID
}

// benchConcurrency runs 200 jobs, each printing 1 MiB, across 20 sessions
// on 4 sshds (one sshjobs serve process), and reports the wall time, jobs/s,
// the peak RSS, and the descriptors and threads left after, against the
// baseline after a warm-up round (they should match). Goroutines are not
// visible from outside: "goroutines" runs the same jobs in this process.
func benchConcurrency(b *testing.B, bin string, inProcess bool) {
	const hosts, sessions, total, each = 4, 20, 200, 1 << 20
	var cfg strings.Builder
	for i := range hosts {
		srv := sshtest.StartOpenSSH(b, sshtest.Options{Env: []string{"HOME=" + b.TempDir()}})
		text, err := os.ReadFile(srv.SSHConfig)
		if err != nil {
			b.Fatal(err)
		}
		cfg.WriteString(strings.Replace(string(text), "Host "+srv.Alias, fmt.Sprintf("Host h%d", i), 1))
	}
	dir := b.TempDir()
	conf := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{"SSHJOBS_DB=" + filepath.Join(dir, "sshjobs.db"), "SSHJOBS_SSH_CONFIG=" + conf, "SSHJOBS_DAEMON=off"}
	cmd := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x", each)
	if inProcess {
		benchGoroutines(b, conf, dir, hosts, sessions, total, each, cmd)
		return
	}
	var wall time.Duration
	var peak float64
	var fds0, thr0, fds1, thr1 int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := startServe(b, bin, env)
		// Warm up: connect, start the shells, and run one job in each at
		// once, so that the baseline includes what stays by design (the
		// shells, the database's pool of readers, the runtime's threads).
		var warm sync.WaitGroup
		for sess := range sessions {
			warm.Go(func() {
				s.run(b, map[string]any{"host": fmt.Sprintf("h%d", sess%hosts), "session": fmt.Sprintf("s%d", sess), "command": cmd, "timeout_s": 300})
			})
		}
		warm.Wait()
		time.Sleep(time.Second)
		fds0, thr0 = procCounts(s.pid())
		fdsBefore := fdTargets(s.pid())
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, total)
		for sess := range sessions {
			wg.Go(func() {
				for i := sess; i < total; i += sessions {
					v := s.run(b, map[string]any{"host": fmt.Sprintf("h%d", sess%hosts), "session": fmt.Sprintf("s%d", sess), "command": cmd, "timeout_s": 300})
					if v.State != jobs.StateSucceeded || v.OutputBytes != each {
						errs <- fmt.Errorf("job %s: %s, %d bytes (%s)", v.JobID, v.State, v.OutputBytes, v.Error)
					}
				}
			})
		}
		wg.Wait()
		wall = time.Since(start)
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		peak = rssMiB(s.pid(), "VmHWM")
		// The shells stay open (they are warm): what must return to the
		// baseline is what each job took.
		deadline := time.Now().Add(10 * time.Second)
		for fds1, thr1 = procCounts(s.pid()); fds1 != fds0 && time.Now().Before(deadline); fds1, thr1 = procCounts(s.pid()) {
			time.Sleep(100 * time.Millisecond)
		}
		if fds1 != fds0 {
			for fd, target := range fdTargets(s.pid()) {
				if fdsBefore[fd] != target {
					b.Logf("descriptor %s: %s (before: %q)", fd, target, fdsBefore[fd])
				}
			}
		}
		s.close()
		b.StartTimer()
	}
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(total/wall.Seconds(), "jobs/s")
	b.ReportMetric(peak, "peak-MiB")
	b.ReportMetric(float64(fds1-fds0), "fds-left")
	b.ReportMetric(float64(thr1-thr0), "threads-left")
}

// benchSettle is how long the output rows wait after a job before reading
// the RSS that stays.
var benchSettle = func() time.Duration {
	d, err := time.ParseDuration(os.Getenv("SSHJOBS_BENCH_SETTLE"))
	if err != nil {
		return 5 * time.Second
	}
	return d
}()

// benchGoroutines runs benchConcurrency's jobs in this process, to count the
// goroutines before (after a warm-up round) and after.
func benchGoroutines(b *testing.B, conf, dir string, hosts, sessions, total, each int, cmd string) {
	var cfg config
	if err := parseFlags(newFlags("bench", "", io.Discard, &cfg), &cfg, []string{"-db", filepath.Join(dir, "inproc.db"), "-ssh-config", conf}); err != nil {
		b.Fatal(err)
	}
	a, err := openApp(context.Background(), cfg, modeServe)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	round := func(n int) {
		var wg sync.WaitGroup
		for sess := range sessions {
			wg.Go(func() {
				for i := sess; i < n; i += sessions {
					j, err := a.submit(context.Background(), fmt.Sprintf("h%d", sess%hosts), jobs.Spec{Session: fmt.Sprintf("s%d", sess), Command: cmd})
					if err == nil {
						j, err = a.eng.Wait(context.Background(), j.ID, jobs.WaitOptions{Timeout: 5 * time.Minute, Offset: -1})
					}
					if err != nil || j.State != jobs.StateSucceeded || j.OutputBytes != int64(each) {
						b.Errorf("job: %v %v", j, err)
					}
				}
			})
		}
		wg.Wait()
	}
	round(sessions)
	time.Sleep(time.Second)
	before := runtime.NumGoroutine()
	var after int
	b.ResetTimer()
	for range b.N {
		round(total)
	}
	b.StopTimer()
	deadline := time.Now().Add(10 * time.Second)
	for after = runtime.NumGoroutine(); after != before && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(100 * time.Millisecond)
	}
	b.ReportMetric(float64(before), "goroutines-before")
	b.ReportMetric(float64(after-before), "goroutines-left")
}
