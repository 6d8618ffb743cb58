package prompt

import (
	"testing"

	"github.com/sshjobs/sshjobs/jobs"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		line string
		kind jobs.PromptKind // "" = not a prompt
	}{
		// Passwords and passphrases.
		{"Password: ", jobs.PromptPassword},
		{"Password:", jobs.PromptPassword},
		{"root@db1's password: ", jobs.PromptPassword},
		{"[sudo] password for alice: ", jobs.PromptPassword},
		{"Enter passphrase for key '/home/a/.ssh/id_ed25519': ", jobs.PromptPassword},
		{"Enter PIN for 'PIV Card Holder pin (PIV_II)': ", jobs.PromptPassword},
		{"Password for 'https://alice@github.com': ", jobs.PromptPassword},
		{"New password: ", jobs.PromptPassword},
		{"Verification code: ", jobs.PromptPassword},
		// Confirmations.
		{"Do you want to continue? [Y/n] ", jobs.PromptConfirm},
		{"Remove all? [y/N]", jobs.PromptConfirm},
		{"Overwrite file? (y/n) ", jobs.PromptConfirm},
		{"Are you sure you want to continue connecting (yes/no)? ", jobs.PromptConfirm},
		{"Are you sure you want to continue connecting (yes/no/[fingerprint])? ", jobs.PromptConfirm},
		{"Proceed ([y]/n)? ", jobs.PromptConfirm},
		{"Continue?", jobs.PromptConfirm},
		{"Really delete the volume? ", jobs.PromptConfirm},
		// Pagers.
		{":", jobs.PromptPager},
		{"(END)", jobs.PromptPager},
		{"README.md (END)", jobs.PromptPager},
		{"--More--", jobs.PromptPager},
		{"--More--(42%)", jobs.PromptPager},
		{"lines 1-20", jobs.PromptPager},
		{"lines 1-20/200 10%", jobs.PromptPager},
		{" Manual page ls(1) line 1 (press h for help or q to quit)", jobs.PromptPager},
		// Press a key.
		{"Press any key to continue . . .", jobs.PromptPressKey},
		{"Press Enter to continue", jobs.PromptPressKey},
		{"[press RETURN to continue]", jobs.PromptPressKey},
		{"Hit <Enter> when ready", jobs.PromptPressKey},
		// Questions.
		{"Value: ", jobs.PromptQuestion},
		{"What is your name? ", jobs.PromptQuestion},
		{"Enter choice [1-3]: ", jobs.PromptQuestion},
		{"Username for 'https://github.com': ", jobs.PromptQuestion},
		{"Country Name (2 letter code) [AU]:", jobs.PromptQuestion},
		{"earlier output\nName: ", jobs.PromptQuestion},
		{"downloading 10%\rName: ", jobs.PromptQuestion},

		// Not prompts.
		{"", ""},
		{"   ", ""},
		{"password=secret", ""},
		{"export DB_PASSWORD=hunter2", ""},
		{`"password": "x"`, ""},
		{`  "password":`, ""},
		{`{"user":"a","password":`, ""},
		{"https://example.com/login?user=a&password=b", ""},
		{"curl https://example.com/reset?password=", ""},
		{"see http://example.com:", ""},
		{"2024-05-01 12:00:00 INFO waiting for password:", ""},
		{"[12:00:01] connecting to db?", ""},
		{"May  1 12:00:00 host sshd[1]: Accepted password for root from 10.0.0.1:", ""},
		{"ERROR: could not read config:", ""},
		{"[  12.345] usb 1-1: new device:", ""},
		{"Building project", ""},
		{"100%", ""},
		{"?", ""},
		{"std::", ""},
		{"Name: \n", ""},
		{"Password: \nok", ""},
		{"bin\x00ary:", ""},
		{string(make([]byte, 300)) + "Name:", ""},
	}
	for _, tt := range tests {
		p, ok := Detect(tt.line)
		switch {
		case tt.kind == "" && ok:
			t.Errorf("Detect(%q) = %+v, want no prompt", tt.line, p)
		case tt.kind != "" && !ok:
			t.Errorf("Detect(%q): no prompt, want %s", tt.line, tt.kind)
		case ok && p.Kind != tt.kind:
			t.Errorf("Detect(%q) kind = %s, want %s", tt.line, p.Kind, tt.kind)
		}
	}
}

func TestDetectText(t *testing.T) {
	p, ok := Detect("apt output\nDo you want to continue? [Y/n] ")
	if !ok || p.Text != "Do you want to continue? [Y/n]" {
		t.Fatalf("Detect = %+v, %v; want the last line, trimmed", p, ok)
	}
}
