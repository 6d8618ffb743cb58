package sshconfig

import (
	"fmt"
	"strings"
)

// EnvName is the OVRD_{ALIAS}_ prefix for an alias: upper-cased, every
// character other than A-Z and 0-9 turned into '_' (web-1.example → WEB_1_EXAMPLE).
func EnvName(alias string) string {
	var b strings.Builder
	b.WriteString("OVRD_")
	for _, r := range strings.ToUpper(alias) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteByte('_')
	return b.String()
}

// envPrefixes are the prefixes under which alias's variables are looked up, in
// order: verbatim (the seeds' OVRD_{alias}_), then EnvName's upper-cased form.
func envPrefixes(alias string) []string {
	verbatim, upper := "OVRD_"+alias+"_", EnvName(alias)
	if verbatim == upper {
		return []string{upper}
	}
	return []string{verbatim, upper}
}

// LookupEnv returns the first non-empty OVRD_{alias}_{suffix} of envPrefixes and
// the variable's name ("" when none is set).
func LookupEnv(getenv func(string) string, alias, suffix string) (value, name string) {
	for _, p := range envPrefixes(alias) {
		if v := getenv(p + suffix); v != "" {
			return v, p + suffix
		}
	}
	return "", ""
}

// overrides are the resolution values the environment gives for an alias.
type overrides struct {
	hostName string // OVRD_{ALIAS}_HOST
	port     int    // OVRD_{ALIAS}_PORT
	user     string // OVRD_{ALIAS}_USER
	key      string // OVRD_{ALIAS}_KEY: a private key file, tried first (like ssh -i)
}

// envOverrides reads the OVRD_{ALIAS}_* resolution overrides. They beat
// ssh_config but not a user or port written in the target itself. Values are
// validated like a target's parts, since they reach `ssh -G`'s command line.
// An invalid port is ignored with a warning rather than failing: the seeds
// ignore it too, and a stale variable should not make a host unreachable.
func envOverrides(getenv func(string) string, alias string, warn func(string)) (overrides, error) {
	var o overrides
	if getenv == nil {
		return o, nil
	}
	if v, name := LookupEnv(getenv, alias, "HOST"); v != "" {
		if err := checkHostName(v); err != nil {
			return o, fmt.Errorf("%s: %w", name, err)
		}
		o.hostName = v
	}
	if v, name := LookupEnv(getenv, alias, "PORT"); v != "" {
		if n, err := parsePort(v); err != nil {
			warn(fmt.Sprintf("%s ignored: %v", name, err))
		} else {
			o.port = n
		}
	}
	if v, name := LookupEnv(getenv, alias, "USER"); v != "" {
		if err := checkChars(name, v); err != nil {
			return o, err
		}
		if strings.Contains(v, "@") {
			return o, fmt.Errorf("%s: contains @", name)
		}
		if err := checkUser(v); err != nil {
			return o, fmt.Errorf("%s: %w", name, err)
		}
		o.user = v
	}
	if v, _ := LookupEnv(getenv, alias, "KEY"); v != "" {
		o.key = v
	}
	return o, nil
}
