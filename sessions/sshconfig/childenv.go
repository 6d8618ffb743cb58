package sshconfig

import (
	"os"
	"strings"
)

// ChildEnv is the environment of the programs sshjobs starts because
// ssh_config says so (a ProxyCommand; `ssh -G` and the Match exec commands it
// runs): ours without the secrets. Those commands come from a config file,
// not from us, and none of them needs a password, so they get none to leak
// (to their logs, to a remote host, to `ps e`). Everything else stays, as
// under ssh: PATH, HOME, SSH_AUTH_SOCK, proxy settings and the like.
func ChildEnv() []string { return WithoutSecrets(os.Environ()) }

// WithoutSecrets drops the NAME=VALUE entries of env whose name holds a
// secret: what ChildEnv is for another environment than the process's (a
// daemon's client's).
func WithoutSecrets(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		// Index from 1: Windows keeps per-drive entries like "=C:=C:\".
		name := kv
		if i := strings.IndexByte(kv[min(1, len(kv)):], '='); i >= 0 {
			name = kv[:i+1]
		}
		if !isSecretEnv(name) {
			out = append(out, kv)
		}
	}
	return out
}

// isSecretEnv reports whether a variable of that name holds a secret (docs/TOOLS.md
// "Secrets"): the master password, and the OVRD_{ALIAS}_ secrets EnvSecrets
// reads (_PASS, _KEY_PASS, _SUDO_PASS, _ENABLE_PASS) or the key file they
// unlock (_KEY). The _SUDO_PASS and _ENABLE_PASS suffixes count without the
// OVRD_ prefix too, as other tools name their secrets so. Names are compared
// upper-cased: Windows does not tell case apart.
func isSecretEnv(name string) bool {
	n := strings.ToUpper(name)
	switch n {
	case "SSHJOBS_MASTER_PASSWORD", "MCP_SSH_MASTER_PASSWORD":
		return true
	}
	if strings.HasSuffix(n, "_SUDO_PASS") || strings.HasSuffix(n, "_ENABLE_PASS") {
		return true
	}
	if !strings.HasPrefix(n, "OVRD_") {
		return false
	}
	// _PASS covers _KEY_PASS, _SUDO_PASS and _ENABLE_PASS.
	return strings.HasSuffix(n, "_KEY") || strings.HasSuffix(n, "_PASS")
}
