package sshconfig

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// sshGTimeout bounds `ssh -G`, which only reads files (and runs Match exec
// commands, which a user's config may contain).
const sshGTimeout = 10 * time.Second

// runSSHG asks the OpenSSH client for the fully resolved configuration of
// req.alias: `ssh -G [-F file] [-l user] [-p port] [-o HostName=h] -- alias`.
// OpenSSH then handles Match, Include, canonicalisation and its own defaults.
// The alias was validated by parseTarget, and "--" keeps it from ever being
// read as an option.
func runSSHG(ctx context.Context, sshPath, configFile string, env []string, req request) (sshOptions, error) {
	args := []string{"-G"}
	if configFile != "" {
		args = append(args, "-F", configFile)
	}
	if req.user != "" {
		args = append(args, "-l", req.user)
	}
	if req.port != 0 {
		args = append(args, "-p", strconv.Itoa(req.port))
	}
	if req.hostName != "" {
		args = append(args, "-o", "HostName="+req.hostName)
	}
	args = append(args, "--", req.alias)

	ctx, cancel := context.WithTimeout(ctx, sshGTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshPath, args...)
	cmd.Env = env // Match exec commands inherit it
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", " ; ")), " ")
		if msg == "" {
			msg = err.Error()
		}
		where := "~/.ssh/config"
		if configFile != "" {
			where = configFile
		}
		return nil, fmt.Errorf("ssh -G (reading %s): %s", where, msg)
	}
	opts, err := parseSSHG(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("ssh -G output: %w", err)
	}
	if opts.get("hostname") == "" {
		return nil, errors.New("ssh -G output: no hostname line")
	}
	return opts, nil
}

// parseSSHG reads `ssh -G` output: one "keyword value" per line, keyword in
// lower case (a few, like canonicalizePermittedcnames, are not, so it is
// folded), repeated keywords (identityfile) kept in order.
func parseSSHG(out []byte) (sshOptions, error) {
	opts := sshOptions{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		key = strings.ToLower(key)
		if key == "" {
			return nil, fmt.Errorf("line %d: no keyword", n)
		}
		for _, c := range key {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
				return nil, fmt.Errorf("line %d: bad keyword %q", n, key)
			}
		}
		if strings.IndexByte(val, 0) >= 0 {
			return nil, fmt.Errorf("line %d: NUL in value of %s", n, key)
		}
		opts[key] = append(opts[key], val)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return opts, nil
}
