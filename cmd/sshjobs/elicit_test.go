package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// elicitClient connects a go-sdk client to a fresh sshjobs whose ssh_config
// has the password-only alias "pw" for srv. With urlMode the client declares
// URL elicitation and handle answers it; without, it declares form mode only.
func elicitClient(t *testing.T, srv *sshtest.Server, master string, urlMode bool, handle func(*mcp.ElicitParams) *mcp.ElicitResult) (*mcpClient, *int) {
	t.Helper()
	cfg := testConfig(t, nil, t.TempDir())
	cfg.SSHConfig, cfg.master = passwordOnlyConfig(t, srv), master
	return elicitMCP(t, cfg, urlMode, handle)
}

// elicitMCP connects a go-sdk client to a fresh sshjobs of cfg, declaring
// URL elicitation (urlMode) or form mode only; handle answers elicitations.
func elicitMCP(t *testing.T, cfg config, urlMode bool, handle func(*mcp.ElicitParams) *mcp.ElicitResult) (*mcpClient, *int) {
	t.Helper()
	client, calls := elicitingClient(urlMode, handle)
	return connectMCP(t, cfg, client), calls
}

// elicitingClient is a go-sdk client declaring URL elicitation (urlMode) or
// form mode only, whose elicitations handle answers one at a time; calls
// counts them.
func elicitingClient(urlMode bool, handle func(*mcp.ElicitParams) *mcp.ElicitResult) (*mcp.Client, *int) {
	var mu sync.Mutex
	calls := new(int)
	caps := &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}}}
	if urlMode {
		caps.Elicitation = &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}
	}
	opts := &mcp.ClientOptions{
		Capabilities: caps,
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			defer mu.Unlock()
			*calls++
			return handle(req.Params), nil
		},
	}
	return mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts), calls
}

// postSecret answers the page the way its form does.
func postSecret(t *testing.T, pageURL, secret string, remember bool) *http.Response {
	t.Helper()
	resp, err := http.Get(pageURL)
	if err != nil {
		t.Errorf("GET page: %v", err)
		return nil
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	page := string(body[:n])
	i := strings.Index(page, `name="token" value="`)
	if resp.StatusCode != 200 || i < 0 || !strings.Contains(page, `type="password"`) {
		t.Errorf("page: %d %q", resp.StatusCode, page)
		return nil
	}
	token := page[i+len(`name="token" value="`):]
	token = token[:strings.Index(token, `"`)]
	form := url.Values{"token": {token}, "secret": {secret}}
	if remember {
		form.Set("remember", "on")
	}
	resp, err = http.PostForm(pageURL, form)
	if err != nil {
		t.Errorf("POST page: %v", err)
		return nil
	}
	resp.Body.Close()
	return resp
}

// connectSavesAsked calls ssh_connect on "pw", which must ask once, log in
// with the password typed on the page and save it ("remember" ticked).
func connectSavesAsked(t *testing.T, c *mcpClient, calls *int) *mcp.CallToolResult {
	t.Helper()
	res := c.call("ssh_connect", map[string]any{"host": "pw"})
	var out connectOut
	if b, _ := json.Marshal(res.StructuredContent); res.IsError || json.Unmarshal(b, &out) != nil {
		t.Fatalf("connect: %q", text(res))
	}
	if *calls != 1 || out.AuthMethod != "password" || strings.Join(out.Saved, ",") != "password" {
		t.Errorf("calls %d, %+v", *calls, out)
	}
	return res
}

func TestURLElicitationAccept(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})
	var pageURL string
	c, calls := elicitClient(t, srv, "elicit-master", true, func(p *mcp.ElicitParams) *mcp.ElicitResult {
		pageURL = p.URL
		if p.Mode != "url" || p.ElicitationID == "" || !strings.HasPrefix(p.URL, "http://127.0.0.1:") || p.RequestedSchema != nil {
			t.Errorf("elicitation %+v", p)
		}
		// Wrong method, wrong path, a query string: refused, and the page
		// still takes its one answer.
		if resp, err := http.Head(p.URL); err == nil && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("HEAD: %d", resp.StatusCode)
		}
		if resp, err := http.Get(p.URL + "x"); err == nil && resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET another path: %d", resp.StatusCode)
		}
		if resp, err := http.PostForm(p.URL+"?secret=x", url.Values{"secret": {"x"}}); err == nil && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST with a query and no token: %d", resp.StatusCode)
		}
		if resp := postSecret(t, p.URL, srv.Password, true); resp != nil && resp.StatusCode != 200 {
			t.Errorf("POST: %d", resp.StatusCode)
		}
		return &mcp.ElicitResult{Action: "accept"}
	})
	res := connectSavesAsked(t, c, calls)
	assertNoSecret(t, "answer", text(res)+pageURL, srv.Password)
	// One answer only: the page is gone.
	if resp, err := http.Get(pageURL); err == nil && resp.StatusCode != http.StatusNotFound {
		t.Errorf("page after its answer: %d", resp.StatusCode)
	}
	// Remembered: a new connection logs in from the store.
	c.call("ssh_close", map[string]any{"all": true})
	if v := c.job("ssh_run", map[string]any{"host": "pw", "command": "echo remembered"}); v.Output != "remembered\n" {
		t.Errorf("run after remember: %+v", v)
	}
}

func TestURLElicitationDeclineExpiryAndFormOnly(t *testing.T) {
	sshtest.NoAgent(t)
	srv := sshtest.StartInProcess(t, sshtest.Options{})

	c, calls := elicitClient(t, srv, "", true, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "decline"} })
	res := c.call("ssh_connect", map[string]any{"host": "pw"})
	if !res.IsError || *calls != 1 || !strings.Contains(text(res), "decline") || !strings.Contains(text(res), "sshjobs secret set pw") {
		t.Errorf("decline: calls %d %q", *calls, text(res))
	}

	old := elicitTTL
	elicitTTL = 300 * time.Millisecond
	t.Cleanup(func() { elicitTTL = old })
	var pageURL string
	c, _ = elicitClient(t, srv, "", true, func(p *mcp.ElicitParams) *mcp.ElicitResult {
		pageURL = p.URL
		return &mcp.ElicitResult{Action: "accept"}
	})
	res = c.call("ssh_connect", map[string]any{"host": "pw"})
	if !res.IsError || !strings.Contains(text(res), "nobody typed it") {
		t.Errorf("expiry: %q", text(res))
	}
	time.Sleep(100 * time.Millisecond)
	if resp, err := http.Get(pageURL); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("expired page answers %d", resp.StatusCode)
		}
	}

	// A client with form elicitation only is never asked for a secret; the
	// error says what to run.
	c, calls = elicitClient(t, srv, "", false, func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "accept"} })
	res = c.call("ssh_connect", map[string]any{"host": "pw"})
	if !res.IsError || *calls != 0 || !strings.Contains(text(res), "sshjobs secret set pw") || !strings.Contains(text(res), "OVRD_PW_PASS") {
		t.Errorf("form-only client: calls %d %q", *calls, text(res))
	}
}

// The secret typed on a page goes only to the host it was asked for, and
// only to the client that was asked: a retry naming another host gets
// nothing (review finding: the page was taken by its state alone).
func TestURLElicitationBoundToHost(t *testing.T) {
	a := &app{self: &client{}}
	ask, err := a.askByURL(context.Background(), "the login password of alice@a:22", "alice@a:22", sshdial.SecretPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{RequestState: ask.RequestState}}
	_, retried, err := a.answerByURL(context.Background(), req, "alice@b:22")
	if !retried || err == nil || !strings.Contains(err.Error(), "not used for alice@b:22") {
		t.Fatalf("a retry for another host: retried %v, err %v; want refused", retried, err)
	}
	// The page is gone after the refusal: nothing typed there later is used.
	if _, _, err := a.answerByURL(context.Background(), req, "alice@a:22"); err == nil || !strings.Contains(err.Error(), "expired or was used") {
		t.Fatalf("the page after a refused retry: %v", err)
	}
}

// "remember" is offered by the calling client's credential store: a daemon
// whose first front had a master password offers nothing to a front that has
// none (the save would fail), and the other way round.
func TestURLElicitationRememberIsTheClients(t *testing.T) {
	locked, unlocked := credstore.New(nil, "", credParams), credstore.New(nil, "m", credParams)
	for _, tc := range []struct {
		name          string
		daemon, front *credstore.Store
		want          bool
	}{
		{"this process with a master password", unlocked, nil, true},
		{"a front without one", unlocked, locked, false},
		{"a front with one", locked, unlocked, true},
	} {
		a := &app{self: &client{creds: tc.daemon}}
		ctx := context.Background()
		if tc.front != nil {
			ctx = withClient(ctx, &client{creds: tc.front})
		}
		ask, err := a.askByURL(ctx, "the login password of alice@a:22", "alice@a:22", sshdial.SecretPassword, nil)
		if err != nil {
			t.Fatal(err)
		}
		page := a.pages.take(ask.RequestState)
		if page == nil {
			t.Fatalf("%s: no page", tc.name)
		}
		if page.canSave != tc.want {
			t.Errorf("%s: remember offered %v, want %v", tc.name, page.canSave, tc.want)
		}
		page.close()
	}
}
