package sshconfig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// systemConfigFile is read after the user's file, unless a file is named (as
// `ssh -F` skips it too).
const systemConfigFile = "/etc/ssh/ssh_config"

// configKeys are the options Host needs; each is looked up by the fallback path.
var configKeys = []string{"user", "port", "hostname", "identityfile", "identitiesonly",
	"identityagent", "proxyjump", "proxycommand", "serveraliveinterval",
	"serveralivecountmax", "connecttimeout", "stricthostkeychecking",
	"userknownhostsfile", "globalknownhostsfile", "hostkeyalias", "hashknownhosts"}

// multiKeys accumulate over all matching blocks and files, as in OpenSSH;
// every other option takes the first value found.
var multiKeys = map[string]bool{"identityfile": true}

// lookupConfig resolves req with github.com/kevinburke/ssh_config, for
// machines without the OpenSSH client. It supports Host, Include and
// `Match all|host`; a file using any other Match (or broken otherwise) is an
// error naming the file, never a silent empty value. Command-line style
// overrides in req win, like `ssh -l/-p/-o` would.
func lookupConfig(configFile string, req request) (sshOptions, error) {
	var files []string
	if configFile != "" {
		files = []string{configFile}
	} else {
		files = []string{filepath.Join(homeDir(), ".ssh", "config"), systemConfigFile}
	}
	var cfgs []*ssh_config.Config
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			// A named file must exist (ssh -F refuses a missing one); the
			// default files are optional.
			if errors.Is(err, os.ErrNotExist) && (configFile == "" || i > 0) {
				continue
			}
			return nil, fmt.Errorf("read ssh config: %w", err)
		}
		cfg, err := decodeConfig(b)
		if err != nil {
			return nil, fmt.Errorf("parse ssh config %s: %w", f, err)
		}
		cfgs = append(cfgs, cfg)
	}

	opts := sshOptions{}
	if req.user != "" {
		opts["user"] = []string{req.user}
	}
	if req.port != 0 {
		opts["port"] = []string{fmt.Sprint(req.port)}
	}
	if req.hostName != "" {
		opts["hostname"] = []string{req.hostName}
	}
	for _, key := range configKeys {
		if _, set := opts[key]; set {
			continue
		}
		for _, cfg := range cfgs {
			if multiKeys[key] {
				vals, err := cfg.GetAll(req.alias, key)
				if err != nil {
					return nil, fmt.Errorf("ssh config %s: %w", key, err)
				}
				opts[key] = append(opts[key], vals...)
				continue
			}
			val, err := cfg.Get(req.alias, key)
			if err != nil {
				return nil, fmt.Errorf("ssh config %s: %w", key, err)
			}
			if val != "" {
				opts[key] = []string{val}
				break
			}
		}
	}
	return opts, nil
}

// decodeConfig parses one file, turning the library's panics on odd input
// (it has had some) into errors.
func decodeConfig(b []byte) (cfg *ssh_config.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ssh_config parser: %v", r)
		}
	}()
	cfg, err = ssh_config.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, errors.New(strings.TrimSpace(err.Error()))
	}
	return cfg, nil
}
