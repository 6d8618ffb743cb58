package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// findChromium returns a Chromium or Chrome binary, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// The secret page in a real headless browser: a person's way through it
// (type into the password field, tick remember, press the button) logs
// ssh_connect in and stores the password; the page then says it got it.
// Skipped only where no Chromium is installed (not in .ci/run: too heavy).
func TestURLElicitationPageInBrowser(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no chromium installed (apt-get install chromium)")
	}
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	var shown, after string
	var masked bool
	c, calls := elicitClient(t, srv, "browser-master", true, func(p *mcp.ElicitParams) *mcp.ElicitResult {
		ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		err := chromedp.Do(ctx, chromedp.Navigate(p.URL))
		if err == nil {
			shown, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("p")))
		}
		if err == nil {
			masked, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input[name=secret]').type === 'password'`))
		}
		if err == nil {
			err = chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS(`input[name=secret]`), srv.Password),
				chromedp.Click(chromedp.CSS(`input[name=remember]`)),
				chromedp.Click(chromedp.CSS(`button[type=submit]`)),
				chromedp.WaitVisible(chromedp.Search(`//p[contains(., "Received")]`)),
			)
		}
		if err == nil {
			after, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		}
		if err != nil {
			t.Errorf("browser: %v", err)
			return &mcp.ElicitResult{Action: "cancel"}
		}
		return &mcp.ElicitResult{Action: "accept"}
	})
	connectSavesAsked(t, c, calls)
	if !strings.HasPrefix(shown, "Type the login password of ") || !masked || !strings.Contains(after, "Received") {
		t.Errorf("page said %q (password field masked: %v), then %q", shown, masked, after)
	}
	t.Logf("page: %q; after submit: %q", shown, after)
}
