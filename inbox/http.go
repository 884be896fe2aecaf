package inbox

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// Routes, all under /inbox/:
//
//	GET /inbox/                 the messages, newest first
//	GET /inbox/{id}             one message: its HTML part (framed), text part, headers, raw source
//	GET /inbox/{id}/html        the HTML part alone, sandboxed by CSP (the frame's source)
//	GET /inbox/{id}/raw         the raw source as message/rfc822 (an .eml download)
//	GET /inbox/api/messages     every message as JSON, oldest first

// ServeHTTP serves the inbox pages; mount it at /inbox/.
func (b *Inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.handler.ServeHTTP(w, r)
}

func (b *Inbox) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inbox/{$}", b.listPage)
	mux.HandleFunc("GET /inbox/api/messages", b.apiMessages)
	mux.HandleFunc("GET /inbox/{id}", b.messagePage)
	mux.HandleFunc("GET /inbox/{id}/html", b.htmlPart)
	mux.HandleFunc("GET /inbox/{id}/raw", b.rawSource)
	return mux
}

func (b *Inbox) notice() []string {
	if b.cfg.Notice == nil {
		return nil
	}
	return b.cfg.Notice()
}

func (b *Inbox) listPage(w http.ResponseWriter, r *http.Request) {
	msgs := b.Messages()
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	b.render(w, http.StatusOK, "list", struct {
		Notice   []string
		Messages []*Message
	}{b.notice(), msgs})
}

func (b *Inbox) find(w http.ResponseWriter, r *http.Request) *Message {
	id, err := strconv.Atoi(r.PathValue("id"))
	var m *Message
	if err == nil {
		m = b.Message(id)
	}
	if m == nil {
		http.Error(w, "no such message (the inbox keeps the last "+strconv.Itoa(b.cfg.Max)+")", http.StatusNotFound)
	}
	return m
}

func (b *Inbox) messagePage(w http.ResponseWriter, r *http.Request) {
	m := b.find(w, r)
	if m == nil {
		return
	}
	b.render(w, http.StatusOK, "message", struct {
		Notice  []string
		M       *Message
		Headers []headerLine
		Raw     string
	}{b.notice(), m, m.headers(), string(m.Raw)})
}

// htmlPart serves an email's HTML as a sandboxed document: no scripts, no
// forms, no same-origin access, whatever the email contains.
func (b *Inbox) htmlPart(w http.ResponseWriter, r *http.Request) {
	m := b.find(w, r)
	if m == nil {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(m.HTML))
}

func (b *Inbox) rawSource(w http.ResponseWriter, r *http.Request) {
	m := b.find(w, r)
	if m == nil {
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", "attachment; filename=message-"+strconv.Itoa(m.ID)+".eml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(m.Raw)
}

func (b *Inbox) apiMessages(w http.ResponseWriter, r *http.Request) {
	msgs := b.Messages()
	if msgs == nil {
		msgs = []*Message{}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		Messages []*Message `json:"messages"`
	}{msgs})
}

func (b *Inbox) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		b.cfg.Log.Error("inbox: render page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
}).Parse(pageTemplates))

const pageTemplates = `
{{ define "head" }}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ . }} · retain dev inbox</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:.7rem 1.5rem}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:70rem;margin:1.5rem auto;padding:0 1.5rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.45rem .7rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{font-weight:600;color:#5a6270}
.card{background:#fff;border:1px solid #e3e6eb;border-radius:6px;padding:1rem 1.2rem;margin-bottom:1.2rem}
.notice{border-color:#d9822b;background:#fff6ec}
.mono,pre{font:13px/1.4 ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-word;margin:0}
iframe{width:100%;height:38rem;border:1px solid #e3e6eb;background:#fff}
.muted{color:#5a6270}h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:0}
</style></head><body>
<header><a href="/inbox/">retain dev inbox</a></header>
<main>{{ end }}

{{ define "notice" }}{{ with . }}<section class="card notice" id="notice"><h2>Not loaded</h2>
<ul>{{ range . }}<li class="mono">{{ . }}</li>{{ end }}</ul></section>{{ end }}{{ end }}

{{ define "list" }}{{ template "head" "Inbox" }}
{{ template "notice" .Notice }}
<h1>Inbox: {{ len .Messages }} message{{ if ne (len .Messages) 1 }}s{{ end }}</h1>
{{ if .Messages }}<table>
<tr><th>Received</th><th>From</th><th>To</th><th>Subject</th></tr>
{{ range .Messages }}<tr><td class="mono">{{ when .Received }}</td><td>{{ .HeaderFrom }}</td><td>{{ .HeaderTo }}</td><td><a href="/inbox/{{ .ID }}">{{ or .Subject "(no subject)" }}</a></td></tr>
{{ end }}</table>
{{ else }}<p class="muted">Nothing yet. Emails that retain sends arrive here; reload the page.</p>{{ end }}
</main></body></html>{{ end }}

{{ define "message" }}{{ template "head" (or .M.Subject "(no subject)") }}
{{ template "notice" .Notice }}
{{ with .M }}
<h1>{{ or .Subject "(no subject)" }}</h1>
<p class="muted">From {{ .HeaderFrom }} to {{ .HeaderTo }}, received {{ when .Received }} · <a href="/inbox/{{ .ID }}/raw">download .eml</a></p>
{{ with .Err }}<section class="card notice"><p>{{ . }}</p></section>{{ end }}
{{ if .HTML }}<section class="card"><h2>HTML</h2><iframe sandbox src="/inbox/{{ .ID }}/html" title="HTML part"></iframe></section>{{ end }}
{{ if .Text }}<section class="card"><h2>Text</h2><pre>{{ .Text }}</pre></section>{{ end }}
{{ end }}
<section class="card"><h2>Headers</h2><table>
{{ range .Headers }}<tr><th class="mono">{{ .Key }}</th><td class="mono">{{ .Value }}</td></tr>{{ end }}
</table></section>
<section class="card"><h2>Raw source</h2><pre>{{ .Raw }}</pre></section>
</main></body></html>{{ end }}
`
