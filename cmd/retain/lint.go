package main

import (
	"encoding/json"
	"fmt"

	"github.com/retainmail/retain/campaign"
)

var lintCmd = &command{
	name:    "lint",
	summary: "Check campaign files and layouts, reporting every problem at once",
	usage:   "lint [--json] [--templates DIR] [DIR]",
	help: `DIR is a project folder (holding campaigns/ and templates/) or a campaigns
folder (holding lifecycle.yaml). It defaults to $RETAIN_CAMPAIGNS, else the
current directory.

Each problem is printed as path:line:col: message; with --json the output is a
JSON array of {"path","line","col","message"} objects ([] when clean).

Exit status: 0 no problems, 1 problems found, 2 usage error.

Examples:
  retain lint
  retain lint --json campaigns > lint.json`,
	run: runLint,
}

func runLint(c *command, e *env, args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "print problems as a JSON array")
	templates := fs.String("templates", "", "layouts folder (default $RETAIN_TEMPLATES, else templates/ beside the campaigns folder)")
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
	if len(probs) > 0 {
		fmt.Fprintf(e.stderr, "%s in %s\n", plural(len(probs), "problem"), plural(countFiles(probs), "file"))
		return exitProblems
	}
	steps := 0
	for _, c := range l.set.Campaigns {
		steps += len(c.Steps)
	}
	fmt.Fprintf(e.stderr, "%s: %s, %s, no problems\n", d.campaigns, plural(len(l.set.Campaigns), "campaign"), plural(steps, "step"))
	return exitOK
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
