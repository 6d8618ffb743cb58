package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/credstore"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
)

// elicitTTL is how long a secret page accepts its one answer. A variable so
// that a test can see it expire.
var elicitTTL = 5 * time.Minute

// pageAnswer is what the person typed on the page.
type pageAnswer struct {
	kind     sshdial.SecretKind // what the page asked for
	secret   []byte
	remember bool // "remember for this host" was ticked
}

// supportsURLElicitation reports whether the client of ss declared URL-mode
// elicitation. Without it nothing is asked: the MCP spec forbids asking for a
// secret through form mode.
func supportsURLElicitation(ss *mcp.ServerSession) bool {
	if ss == nil {
		return false
	}
	p := ss.InitializeParams()
	return p != nil && p.Capabilities != nil && p.Capabilities.Elicitation != nil && p.Capabilities.Elicitation.URL != nil
}

// pageSet holds the secret pages waiting for a retried tool call, by
// elicitation id (which is also the call's requestState). The zero value is
// ready to use.
type pageSet struct {
	mu sync.Mutex
	m  map[string]*secretPage
}

// maxOpenPages bounds the secret pages open at once (each holds a listener
// for elicitTTL): a looping caller cannot exhaust descriptors.
const maxOpenPages = 4

func (ps *pageSet) add(p *secretPage) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = map[string]*secretPage{}
	}
	if len(ps.m) >= maxOpenPages {
		return fmt.Errorf("%d pages asking for secrets are open already: answer or let them expire (%s)", len(ps.m), elicitTTL)
	}
	ps.m[p.id] = p
	return nil
}

// take removes and returns the page of id, nil if there is none (expired,
// already used, or a state this process never issued).
func (ps *pageSet) take(id string) *secretPage {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.m[id]
	delete(ps.m, id)
	return p
}

// askByURL starts a one-time page asking for the secret of kind for the
// destination h (described as what) and returns the tool result that
// asks the client for it the spec's way: an input-required result (multi
// round-trip requests) holding one URL-mode elicitation, whose id the retried
// call brings back as its requestState. For a client on an older protocol
// go-sdk sends the elicitation itself and calls the handler again.
//
// The page is on 127.0.0.1 (random port, unguessable path and form token),
// takes one POST, and is gone after it or elicitTTL. The secret travels from
// the browser to this process only: it is in no URL, log line or MCP message.
func (a *app) askByURL(ctx context.Context, what, host string, kind sshdial.SecretKind, session *mcp.ServerSession) (*mcp.CallToolResult, error) {
	// "remember" is offered only where it can work: the calling client's
	// store (a daemon's fronts may have different master passwords, or none).
	creds := a.client(ctx).creds
	page, err := newSecretPage(what, creds != nil && creds.Enabled())
	if err != nil {
		return nil, err
	}
	// The answer is for this host and this client only: a retry that names
	// another host, or comes from another client, does not get it.
	page.host, page.kind, page.session = host, kind, session
	if err := a.pages.add(page); err != nil {
		page.close()
		return nil, err
	}
	time.AfterFunc(elicitTTL, func() { a.pages.take(page.id) })
	return &mcp.CallToolResult{
		InputRequests: mcp.InputRequestMap{page.id: &mcp.ElicitParams{
			Mode:          "url",
			Message:       fmt.Sprintf("sshjobs needs %s. Open this local page to type it; the assistant does not see it.", what),
			URL:           page.url,
			ElicitationID: page.id,
		}},
		RequestState: page.id,
	}, nil
}

// answerByURL is the retried call's side of askByURL: ok is false when the
// call is not a retry of one; else it waits for the person's answer on the
// page, up to the page's expiry. ans.kind is the kind asked for whenever
// the page was found, also with an error.
func (a *app) answerByURL(ctx context.Context, req *mcp.CallToolRequest, host string) (ans pageAnswer, ok bool, err error) {
	if req == nil || req.Params == nil || req.Params.RequestState == "" {
		return pageAnswer{}, false, nil
	}
	id := req.Params.RequestState
	page := a.pages.take(id)
	if page == nil {
		return pageAnswer{}, true, errors.New("the page for the secret has expired or was used: call again")
	}
	defer page.close()
	ans.kind = page.kind
	if page.host != host || page.session != req.Session {
		return ans, true, fmt.Errorf("the secret typed on the page was asked for %s by another call; it is not used for %s: call again", page.host, host)
	}
	res, _ := req.Params.InputResponses[id].(*mcp.ElicitResult)
	if res == nil || res.Action != "accept" {
		action := "no answer"
		if res != nil {
			action = res.Action
		}
		return ans, true, fmt.Errorf("the user did not open the page (%s)", action)
	}
	timer := time.NewTimer(time.Until(page.expires))
	defer timer.Stop()
	select {
	case got := <-page.answers:
		// The out-of-band step is over: the client may close its prompt.
		if req.Session != nil {
			_ = req.Session.NotifyElicitationComplete(ctx, &mcp.ElicitationCompleteParams{ElicitationID: id})
		}
		got.kind = page.kind
		return got, true, nil
	case <-timer.C:
		return ans, true, fmt.Errorf("nobody typed it within %s (the page has expired)", elicitTTL)
	case <-ctx.Done():
		return ans, true, ctx.Err()
	}
}

// secretPage is one one-time page.
type secretPage struct {
	id, url string
	path    string
	token   string // in the form, checked on POST: a second unguessable part
	what    string
	host    string             // the destination the secret is for
	kind    sshdial.SecretKind // the secret asked for
	canSave bool               // the credential store is enabled: offer "remember"
	session *mcp.ServerSession // the client that was asked
	expires time.Time
	answers chan pageAnswer
	srv     *http.Server

	mu   sync.Mutex
	done bool // answered: every further request is refused
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newSecretPage(what string, canSave bool) (*secretPage, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("secret page: %w", err)
	}
	p := &secretPage{id: randomHex(16), path: "/" + randomHex(32), token: randomHex(16), what: what, canSave: canSave,
		expires: time.Now().Add(elicitTTL), answers: make(chan pageAnswer, 1)}
	p.url = "http://" + ln.Addr().String() + p.path
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		// net/http logs some errors with the request line (the path): off.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go p.srv.Serve(ln)
	// The page is gone at its expiry even if the caller has stopped waiting.
	time.AfterFunc(elicitTTL, p.close)
	return p, nil
}

func (p *secretPage) close() { p.srv.Close() }

const pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>sshjobs</title>
<style>body{font-family:sans-serif;max-width:32em;margin:3em auto}input[type=password]{width:100%%;font-size:1.2em}</style></head>
<body><h1>sshjobs</h1><p>%s</p>
<form method="post" autocomplete="off">
<input type="hidden" name="token" value="%s">
<p><input type="password" name="secret" autofocus required></p>
<p>%s</p>
<p><button type="submit">Send to sshjobs</button></p>
</form></body></html>
`

func (p *secretPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if r.URL.Path != p.path || done || time.Now().After(p.expires) {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.Set("Content-Type", "text/html; charset=utf-8")
		remember := `<label><input type="checkbox" name="remember"> remember for this host (stored encrypted)</label>`
		if !p.canSave {
			remember = "Used for this task only: sshjobs has no master password (" + credstore.EnvMaster + "), so it cannot remember it."
		}
		fmt.Fprintf(w, pageHTML, html.EscapeString("Type "+p.what+"."), p.token, remember)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		// Only the body counts: a secret in a query string would be in a URL.
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(p.token)) != 1 || r.URL.RawQuery != "" {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		secret := r.PostForm.Get("secret")
		if secret == "" {
			http.Error(w, "empty", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		p.done = true
		p.mu.Unlock()
		p.answers <- pageAnswer{secret: []byte(secret), remember: p.canSave && strings.EqualFold(r.PostForm.Get("remember"), "on")}
		h.Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><p>Received. You can close this page.</p>")
	default:
		h.Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
