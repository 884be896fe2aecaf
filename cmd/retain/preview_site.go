package main

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path"
	"path/filepath"
)

// previewGenerator marks the index of a preview, so that running retain
// preview --all again may clear the folder, and no other.
const previewGenerator = `<meta name="generator" content="retain preview">`

// write writes the site into dir: the parts of every email, the previous
// versions and compare pages of the changed ones, and index.html.
func (s *previewSite) write(dir string) error {
	put := func(name string, b []byte) error {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o644)
	}
	for _, pe := range s.emails() {
		if now := pe.Now; now != nil && now.Email != nil {
			if err := putParts(put, pe.Base, now); err != nil {
				return err
			}
		}
		if before := pe.Before; before != nil && before.Email != nil && (pe.Status == statusChanged || pe.Status == statusRemoved) {
			if err := putParts(put, pe.Base+".before", before); err != nil {
				return err
			}
		}
		if pe.Compared() {
			pe.Diff = lineDiff(pe.Before.Email.Text, pe.Now.Email.Text)
			var b bytes.Buffer
			if err := sitePages.ExecuteTemplate(&b, "compare", struct {
				Site  *previewSite
				Email *previewEmail
			}{s, pe}); err != nil {
				return err
			}
			if err := put(pe.Base+".compare.html", b.Bytes()); err != nil {
				return err
			}
		}
	}
	var b bytes.Buffer
	if err := sitePages.ExecuteTemplate(&b, "index", s); err != nil {
		return err
	}
	return put("index.html", b.Bytes())
}

// putParts writes the HTML part, the text part and the message of r as
// base.html, base.txt and base.eml.
func putParts(put func(string, []byte) error, base string, r *renderedEmail) error {
	for _, f := range []struct {
		ext string
		b   []byte
	}{{".html", []byte(r.Email.HTML)}, {".txt", []byte(r.Email.Text)}, {".eml", r.EML}} {
		if err := put(base+f.ext, f.b); err != nil {
			return err
		}
	}
	return nil
}

// LocaleName is how the index names an email's locale: the variant's, or the
// lifecycle's for the default content.
func (s *previewSite) LocaleName(locale string) string {
	if locale == "" {
		return s.DefaultLocale + " (default)"
	}
	return locale
}

// Class is the kind of a diff line, as the compare page styles it.
func (l diffLine) Class() string {
	switch l.Op {
	case '-':
		return "del"
	case '+':
		return "ins"
	}
	return "same"
}

// sitePages are the index and compare pages: self-contained (inline CSS, no
// script) with relative links only, so that the folder works from file:// and
// as a CI artifact.
var sitePages = template.Must(template.New("site").Funcs(template.FuncMap{
	"base": path.Base,
	"emailLabel": func(pe *previewEmail) string {
		id := pe.StepID
		if pe.Variant != "" {
			id += " variant " + pe.Variant
		}
		if pe.Locale == "" {
			return id
		}
		return fmt.Sprintf("%s (%s)", id, pe.Locale)
	},
}).Parse(`
{{- define "style" -}}
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2937; background: #f9fafb; }
header { background: #fff; border-bottom: 1px solid #e5e7eb; padding: 16px 24px; }
main { padding: 0 24px 32px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
h2 small { font-weight: normal; }
header p { margin: 4px 0 0; }
small, .muted { color: #6b7280; }
a { color: #2563eb; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #e5e7eb; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid #f3f4f6; }
thead th { background: #f3f4f6; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #4b5563; }
td.parts a { margin-right: 8px; white-space: nowrap; }
.status { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: 12px; font-weight: 600; }
.status.changed { background: #fef3c7; color: #92400e; }
.status.new { background: #d1fae5; color: #065f46; }
.status.removed { background: #fee2e2; color: #991b1b; }
.status.unchanged { background: #e5e7eb; color: #374151; }
.error { color: #b91c1c; white-space: pre-wrap; }
table.fields { table-layout: fixed; }
table.fields th:first-child { width: 8em; }
table.fields tr.differs td { background: #fffbeb; }
.side { display: flex; gap: 16px; margin-top: 16px; }
.side figure { flex: 1; margin: 0; min-width: 0; }
.side figcaption { display: flex; gap: 8px; align-items: baseline; margin: 0 0 6px; white-space: nowrap; }
.side figcaption span { font-weight: 600; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.side iframe { width: 100%; height: 900px; border: 1px solid #d1d5db; background: #fff; }
pre.diff { background: #fff; border: 1px solid #e5e7eb; padding: 12px 0; white-space: pre-wrap; font: 13px/1.5 ui-monospace, Menlo, Consolas, monospace; margin: 0; }
pre.diff > * { display: block; padding: 0 12px; text-decoration: none; min-height: 1.5em; }
pre.diff del { background: #fee2e2; color: #991b1b; }
pre.diff ins { background: #dcfce7; color: #166534; }
{{- end }}

{{- define "index" -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
` + previewGenerator + `
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ if .Against }}Emails changed against {{ .Against }}{{ else }}Every email{{ end }} · retain preview</title>
<style>{{ template "style" }}</style>
</head>
<body>
<header>
<h1>{{ if .Against }}Emails changed against <code>{{ .Against }}</code>{{ else }}Every email of the campaigns{{ end }}</h1>
<p id="summary">{{ .Counts }}{{ if .Against }} (unchanged steps are not shown){{ end }}.</p>
<p class="muted">Rendered for {{ .Customer }} as the worker builds them; links are as written (the worker may track clicks through redirects).</p>
</header>
<main>
{{- if and .Against (not .Campaigns) (not .Removed) }}
<p id="nothing">No email renders differently from {{ .Against }}.</p>
{{- end }}
{{- range .Campaigns }}
<section class="campaign" id="campaign-{{ .ID }}">
<h2>{{ .Name }} <small>{{ .ID }}</small></h2>
<table>
<thead><tr><th>Step</th><th>Locale</th>{{ if $.Against }}<th>Status</th>{{ end }}<th>Subject</th><th>Preheader</th><th>Parts</th></tr></thead>
<tbody>
{{- range $e := .Emails }}
<tr data-step="{{ $e.StepID }}" data-locale="{{ $e.Locale }}"{{ with $e.Variant }} data-variant="{{ . }}"{{ end }}{{ with $e.Status }} data-status="{{ . }}"{{ end }}>
<td><b>{{ $e.Label }}</b><br><small>{{ $e.Now.File }}</small></td>
<td>{{ $.LocaleName $e.Locale }}</td>
{{- if $.Against }}
<td><span class="status {{ $e.Status }}">{{ $e.Status }}</span>{{ with $e.Note }}<br><small>{{ . }}</small>{{ end }}</td>
{{- end }}
{{- with $e.Now.Email }}
<td class="subject">{{ .Subject }}</td>
<td class="preheader">{{ .Preheader }}</td>
<td class="parts">
{{- if $e.Compared }}<a href="{{ $e.Base }}.compare.html">compare</a>{{ end -}}
<a href="{{ $e.Base }}.html">HTML</a><a href="{{ $e.Base }}.txt">text</a><a href="{{ $e.Base }}.eml">.eml</a>
{{- if $e.Compared }}<a href="{{ $e.Base }}.before.html">before</a>{{ end -}}
</td>
{{- else }}
<td colspan="3" class="error">{{ $e.Now.Err }}</td>
{{- end }}
</tr>
{{- end }}
</tbody>
</table>
</section>
{{- end }}
{{- if .Removed }}
<section id="removed">
<h2>Removed steps</h2>
<p class="muted">At {{ .Against }} and no longer in the campaigns: customers who have not reached them skip them.</p>
<table>
<thead><tr><th>Step</th><th>Locale</th><th>Status</th><th>Subject at {{ .Against }}</th><th>Preheader</th><th>Parts at {{ .Against }}</th></tr></thead>
<tbody>
{{- range $e := .Removed }}
<tr data-step="{{ $e.StepID }}" data-locale="{{ $e.Locale }}"{{ with $e.Variant }} data-variant="{{ . }}"{{ end }} data-status="removed">
<td><b>{{ $e.Label }}</b><br><small>{{ $e.Before.File }}</small></td>
<td>{{ $.LocaleName $e.Locale }}</td>
<td><span class="status removed">removed</span></td>
{{- with $e.Before.Email }}
<td class="subject">{{ .Subject }}</td>
<td class="preheader">{{ .Preheader }}</td>
<td class="parts"><a href="{{ $e.Base }}.before.html">HTML</a><a href="{{ $e.Base }}.before.txt">text</a><a href="{{ $e.Base }}.before.eml">.eml</a></td>
{{- else }}
<td colspan="3" class="error">{{ $e.Before.Err }}</td>
{{- end }}
</tr>
{{- end }}
</tbody>
</table>
</section>
{{- end }}
</main>
</body>
</html>
{{ end }}

{{- define "compare" -}}
{{- $e := .Email }}{{ $ref := .Site.Against }}{{ $name := base $e.Base -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ emailLabel $e }} against {{ $ref }} · retain preview</title>
<style>{{ template "style" }}</style>
</head>
<body>
<header>
<p><a href="../index.html">← every changed email</a></p>
<h1>{{ emailLabel $e }}</h1>
<p class="muted">{{ $e.Now.File }}, compared with {{ $ref }} ({{ $e.Before.File }}){{ with $e.Note }} · {{ . }}{{ end }}</p>
</header>
<main>
<h2>Headers</h2>
<table class="fields">
<thead><tr><th></th><th>At {{ $ref }}</th><th>Now</th></tr></thead>
<tbody>
<tr id="subject"{{ if ne $e.Before.Email.Subject $e.Now.Email.Subject }} class="differs"{{ end }}><th>Subject</th><td>{{ $e.Before.Email.Subject }}</td><td>{{ $e.Now.Email.Subject }}</td></tr>
<tr id="preheader"{{ if ne $e.Before.Email.Preheader $e.Now.Email.Preheader }} class="differs"{{ end }}><th>Preheader</th><td>{{ $e.Before.Email.Preheader }}</td><td>{{ $e.Now.Email.Preheader }}</td></tr>
</tbody>
</table>
<div class="side">
<figure>
<figcaption><span title="HTML part at {{ $ref }}">HTML part at {{ $ref }}</span><a href="{{ $name }}.before.html">open</a><a href="{{ $name }}.before.eml">.eml</a></figcaption>
<iframe id="before" sandbox src="{{ $name }}.before.html" title="HTML part at {{ $ref }}"></iframe>
</figure>
<figure>
<figcaption><span>HTML part now</span><a href="{{ $name }}.html">open</a><a href="{{ $name }}.eml">.eml</a></figcaption>
<iframe id="after" sandbox src="{{ $name }}.html" title="HTML part now"></iframe>
</figure>
</div>
<h2>Text part</h2>
<pre class="diff" id="text-diff">
{{- range $e.Diff }}{{ if eq .Class "del" }}<del>- {{ .Text }}</del>{{ else if eq .Class "ins" }}<ins>+ {{ .Text }}</ins>{{ else }}<span>  {{ .Text }}</span>{{ end }}{{ end -}}
</pre>
</main>
</body>
</html>
{{ end }}`))
