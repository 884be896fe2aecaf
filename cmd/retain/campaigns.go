package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/render"
)

// dirs are where a project's campaigns and layouts live.
type dirs struct {
	campaigns, templates string
}

// resolveDirs finds the campaigns and templates directories from dir, which may be a
// project (holding campaigns/ and templates/) or a campaigns directory itself (holding
// lifecycle.yaml, with templates/ beside it). templates overrides the layouts folder.
func resolveDirs(dir, templates string) (dirs, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return dirs{}, fmt.Errorf("%s: no such directory: give the project folder (holding campaigns/) or the campaigns folder", dir)
	}
	if !info.IsDir() {
		return dirs{}, fmt.Errorf("%s is a file: give the project folder (holding campaigns/) or the campaigns folder", dir)
	}
	d := dirs{campaigns: dir, templates: filepath.Join(filepath.Dir(filepath.Clean(dir)), "templates")}
	if _, err := os.Stat(filepath.Join(dir, campaign.LifecycleFile)); errors.Is(err, os.ErrNotExist) {
		info, err := os.Stat(filepath.Join(dir, "campaigns"))
		if err != nil || !info.IsDir() {
			// One sentence, not a problem for every folder in it.
			return dirs{}, fmt.Errorf("%s is not a campaigns folder: it holds neither %s nor a campaigns/ folder; give the project folder (holding campaigns/ and templates/) or the campaigns folder", dir, campaign.LifecycleFile)
		}
		d = dirs{campaigns: filepath.Join(dir, "campaigns"), templates: filepath.Join(dir, "templates")}
	}
	if templates != "" {
		d.templates = templates
	}
	return d, nil
}

// loaded is a campaign set with its compiled templates.
type loaded struct {
	set      *campaign.Set
	renderer *render.Renderer
}

// loadCampaigns loads and compiles everything under d. Problems come back as
// campaign.Problems (every one, sorted); any other error means the files could not be
// read at all. With problems, the set and renderer are as far as they got.
func loadCampaigns(d dirs) (*loaded, campaign.Problems, error) {
	var probs campaign.Problems
	set, err := campaign.Load(d.campaigns)
	if err != nil && !errors.As(err, &probs) {
		return nil, nil, err
	}
	probs = append(campaign.Problems(nil), probs...)
	r, err := render.Compile(set, d.templates)
	var rprobs campaign.Problems
	if err != nil && !errors.As(err, &rprobs) {
		return nil, nil, err
	}
	probs = append(probs, rprobs...)
	return &loaded{set: set, renderer: r}, probs.Sort(), nil
}

// campaignsDir is the default campaigns location: $RETAIN_CAMPAIGNS, else the
// current directory (a project or a campaigns folder).
func campaignsDir(e *env) string {
	if d := e.getenv("RETAIN_CAMPAIGNS"); d != "" {
		return d
	}
	return "."
}
