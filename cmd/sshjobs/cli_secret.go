package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"golang.org/x/term"
)

// maxSecretBytes bounds what `secret set` reads from stdin or a key file: a
// private key is a few KiB; anything far larger is a mistake (the wrong file).
const maxSecretBytes = 1 << 20

func cmdSecret(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{"secret needs a subcommand: set, list, rm or passwd"}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "set":
		return cmdSecretSet(ctx, args, stdout, stderr)
	case "list":
		return cmdSecretList(ctx, args, stdout, stderr)
	case "rm":
		return cmdSecretRm(ctx, args, stdout, stderr)
	case "passwd":
		return cmdSecretPasswd(ctx, args, stdout, stderr)
	}
	return usageError{fmt.Sprintf("unknown secret subcommand %q (want set, list, rm or passwd)", sub)}
}

// parseInterspersed parses flags before and after the one positional
// argument, so that `secret set web1 --kind sudo` works as the issue's
// examples write it. It returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, cfg *config, args []string) ([]string, error) {
	if err := parseFlags(fs, cfg, args); err != nil {
		return nil, err
	}
	pos := fs.Args()
	if len(pos) > 1 && strings.HasPrefix(pos[1], "-") {
		rest := pos[1:]
		pos = pos[:1]
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		pos = append(pos, fs.Args()...)
	}
	return pos, nil
}

// stdinTerminal reports whether stdin is a terminal (a person types) rather
// than a pipe or file (a script or a password manager).
func stdinTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// promptHidden asks on the terminal without echo. The prompt goes to stderr:
// stdout may be captured.
func promptHidden(stderr io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, fmt.Errorf("read from the terminal: %w", err)
	}
	return b, nil
}

// readStdinSecret reads a secret piped in: all of stdin, less one final
// newline (what `echo`, `pass show` and most tools add).
func readStdinSecret() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, maxSecretBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	if len(b) > maxSecretBytes {
		return nil, fmt.Errorf("stdin holds more than %d bytes: not a secret", maxSecretBytes)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return b, nil
}

// needMaster makes sure cfg has a master password: the environment's, else
// one typed at the terminal. Without either it says how to give one.
func needMaster(cfg *config, stderr io.Writer) error {
	if cfg.master != "" {
		return nil
	}
	if !stdinTerminal() {
		return credstore.ErrNoMaster
	}
	pw, err := promptHidden(stderr, "sshjobs master password: ")
	if err != nil {
		return err
	}
	if len(pw) == 0 {
		return errors.New("empty master password")
	}
	cfg.master = string(pw)
	clear(pw)
	return nil
}

func cmdSecretSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("secret set", "secret set [flags] HOST  (the secret from the terminal without echo, or from stdin)", stderr, &cfg)
	kindFlag := fs.String("kind", "password", "password, sudo, passphrase or enable")
	keyFile := fs.String("key", "", "save this private key file's contents (kind private_key) instead of reading a secret")
	pos, err := parseInterspersed(fs, &cfg, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"secret set needs one HOST"}
	}
	kind := sshdial.SecretKind(*kindFlag)
	if *keyFile != "" {
		kind = sshdial.SecretPrivateKey
	} else if !credstore.ValidKind(kind) || kind == sshdial.SecretPrivateKey {
		return usageError{fmt.Sprintf("-kind %q: want password, sudo, passphrase or enable (a key: --key FILE)", *kindFlag)}
	}
	// The master password before the secret: both may be typed, and a
	// piped secret leaves no terminal input for the other.
	if err := needMaster(&cfg, stderr); err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	h, err := a.self.resolver.Resolve(ctx, pos[0])
	if err != nil {
		return err
	}
	host := credstore.HostID(h)

	var value []byte
	switch {
	case *keyFile != "":
		if value, err = os.ReadFile(*keyFile); err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		if len(value) > maxSecretBytes || !bytes.Contains(value, []byte("PRIVATE KEY-----")) {
			return fmt.Errorf("%s is not a private key in PEM (-----BEGIN ... PRIVATE KEY-----)", *keyFile)
		}
	case stdinTerminal():
		if value, err = promptHidden(stderr, fmt.Sprintf("%s for %s: ", kind, host)); err != nil {
			return err
		}
	default:
		if value, err = readStdinSecret(); err != nil {
			return err
		}
	}
	defer clear(value)
	if len(value) == 0 {
		return fmt.Errorf("empty %s: nothing saved", kind)
	}
	if err := a.self.creds.Put(ctx, host, h.SecretAlias, kind, value); err != nil {
		return err
	}
	alias := ""
	if h.SecretAlias != "" && h.SecretAlias != h.HostName {
		alias = " (alias " + h.SecretAlias + ")"
	}
	fmt.Fprintf(stdout, "saved %s for %s%s\n", kind, host, alias)
	return nil
}

func cmdSecretList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("secret list", "secret list [flags]", stderr, &cfg)
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"secret list takes no arguments"}
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	out, err := a.credentials(ctx, credentialsIn{Action: "list"})
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, out.text())
	return err
}

func cmdSecretRm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("secret rm", "secret rm [flags] HOST", stderr, &cfg)
	kind := fs.String("kind", "", "only this kind: password, private_key, passphrase, sudo or enable (default all)")
	pos, err := parseInterspersed(fs, &cfg, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"secret rm needs one HOST"}
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	out, err := a.credentials(ctx, credentialsIn{Action: "delete", Host: pos[0], Kind: *kind})
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, out.text())
	return err
}

func cmdSecretPasswd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config
	fs := newFlags("secret passwd", "secret passwd [flags]  (the new password from the terminal, twice, or from stdin)", stderr, &cfg)
	if err := parseFlags(fs, &cfg, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"secret passwd takes no arguments"}
	}
	if err := needMaster(&cfg, stderr); err != nil {
		return err
	}
	var newPW []byte
	var err error
	if stdinTerminal() {
		if newPW, err = promptHidden(stderr, "new master password: "); err != nil {
			return err
		}
		again, err := promptHidden(stderr, "new master password again: ")
		if err != nil {
			return err
		}
		same := bytes.Equal(newPW, again)
		clear(again)
		if !same {
			return errors.New("the two new master passwords differ: nothing changed")
		}
	} else if newPW, err = readStdinSecret(); err != nil {
		return err
	}
	defer clear(newPW)
	if len(newPW) == 0 {
		return errors.New("empty new master password: nothing changed")
	}
	a, err := openApp(ctx, cfg, modeRead)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.self.creds.ChangeMaster(ctx, string(newPW)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "master password changed; set %s to the new one for `sshjobs serve`\n", credstore.EnvMaster)
	return nil
}
