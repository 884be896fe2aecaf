package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/retainmail/retain/campaign"
)

var lintCmd = &command{
	name:    "lint",
	summary: "Check campaign files and layouts, reporting every problem at once",
	usage:   "lint [--json] [--against REF|DIR] [--strict] [--templates DIR] [DIR]",
	help: `DIR is a project folder (holding campaigns/ and templates/) or a campaigns
folder (holding lifecycle.yaml). It defaults to $RETAIN_CAMPAIGNS, else the
current directory.

Each problem is printed as path:line:col: message; with --json the output is a
JSON array of {"path","line","col","message","warning"} objects ([] when clean).

--against compares with the campaigns at a git revision (a branch, tag or
commit of the repository holding DIR, read with git archive; nothing is
checked out) or in another folder, and warns about edits that change what
customers already in a campaign get: a step file renamed without id: (its
identity changes: customers who had it skip the renamed step, customers
waiting for it get the renamed one), a step removed (customers waiting for it
skip it), a campaign removed (its enrollments end). Warnings are printed as
path:line:col: warning: message and fail the run only with --strict.
retain impact counts the customers each edit touches.

Exit status: 0 no problems (warnings allowed unless --strict), 1 problems
found, 2 usage error.

Examples:
  retain lint
  retain lint --json campaigns > lint.json
  retain lint --against origin/main`,
	run: runLint,
}

func runLint(c *command, e *env, args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print problems as a JSON array")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
	ref := fs.String("against", "", "warn about risky edits since this git `REF` (or campaigns folder)")
	strict := fs.Bool("strict", false, "exit 1 on warnings too")
	pos, code, ok := c.parse(fs, e, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return c.usageError(e, "one folder at most, got %d", len(pos))
	}
	dir := campaignsDir(e)
	if len(pos) == 1 {
		dir = pos[0]
	}
	d, err := resolveDirs(dir, cmpOr(*templates, e.getenv("RETAIN_TEMPLATES")))
	if err != nil {
		fmt.Fprintf(e.stderr, "retain lint: %v\n", err)
		return exitUsage
	}
	l, probs, err := loadCampaigns(d)
	if err != nil {
		fmt.Fprintf(e.stderr, "retain lint: %v\n", err)
		return exitProblems
	}
	if *ref != "" {
		prev, code := loadAgainst(c, e, *ref, d, "compared as far as they load")
		if prev == nil {
			return code
		}
		probs = append(probs, editWarnings(campaign.Compare(prev.set, l.set), d.campaigns, *ref)...).Sort()
	}
	errs, warns := 0, 0
	for _, p := range probs {
		if p.Warning {
			warns++
		} else {
			errs++
		}
	}
	if *asJSON {
		if probs == nil {
			probs = campaign.Problems{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(probs); err != nil {
			fmt.Fprintf(e.stderr, "retain lint: %v\n", err)
			return exitProblems
		}
	} else {
		for _, p := range probs {
			fmt.Fprintln(e.stdout, p)
		}
	}
	switch {
	case errs > 0:
		fmt.Fprintf(e.stderr, "%s in %s\n", plural(errs, "problem"), plural(countFiles(probs), "file"))
		if warns > 0 {
			fmt.Fprintf(e.stderr, "and %s\n", plural(warns, "warning"))
		}
		return exitProblems
	case warns > 0:
		fmt.Fprintf(e.stderr, "%s in %s, no problems\n", plural(warns, "warning"), plural(countFiles(probs), "file"))
		if *strict {
			return exitProblems
		}
		return exitOK
	}
	steps := 0
	for _, c := range l.set.Campaigns {
		steps += len(c.Steps)
	}
	fmt.Fprintf(e.stderr, "%s: %s, %s, no problems\n", d.campaigns, plural(len(l.set.Campaigns), "campaign"), plural(steps, "step"))
	return exitOK
}

// editWarnings turns the edits since ref that change what customers already in
// a campaign get into warnings at the new files.
func editWarnings(diff *campaign.Diff, dir, ref string) campaign.Problems {
	var ws campaign.Problems
	warn := func(path string, pos campaign.Pos, format string, args ...any) {
		ws.Add(path, pos, format, args...)
		ws[len(ws)-1].Warning = true
	}
	for _, c := range diff.Removed {
		warn(filepath.Join(dir, c.ID, campaign.CampaignFile), campaign.Pos{Line: 1, Col: 1},
			"campaign %q is removed since %s: its customers leave it at their next step (recorded as \"campaign edited: campaign removed\")", c.ID, ref)
	}
	for _, cd := range diff.Changed {
		renamed := map[*campaign.Step]bool{}
		for _, r := range cd.Renamed {
			renamed[r.Old] = true
			if r.New.IDPos.Line > 0 {
				continue // it sets an id: of its own, on purpose
			}
			warn(r.New.Content.Path, campaign.Pos{Line: 1, Col: 1},
				"step %q takes the place of %q (%s at %s): renamed? add `id: %s` to keep its history; without it, customers who had %q skip this step and customers waiting for %q get this one instead",
				r.New.Slug, r.Old.Slug, filepath.Base(r.Old.Content.Path), ref, r.Old.Slug, r.Old.Slug, r.Old.Slug)
		}
		for _, st := range cd.Removed {
			if renamed[st] {
				continue
			}
			warn(cd.New.Path, campaign.Pos{Line: 1, Col: 1},
				"step %q (%s at %s) is removed: customers waiting for it skip it and get the step after it; retain impact --against %s counts them",
				st.Slug, filepath.Base(st.Content.Path), ref, ref)
		}
	}
	return ws
}

func countFiles(probs campaign.Problems) int {
	files := map[string]bool{}
	for _, p := range probs {
		files[p.Path] = true
	}
	return len(files)
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
