// Package campaign loads and validates what marketers write: campaigns/lifecycle.yaml
// and one folder per campaign holding campaign.md and one Markdown file per email step.
//
// Load returns a typed model (Set) that the lifecycle engine, the renderer and the
// worker share, or every problem found as Problems, each with its file:line:col.
// Expressions (audience, only_if, skip_if, trigger and goal conditions) are compiled
// and type-checked here, once, with expr-lang/expr against the customer attributes and
// counters declared in lifecycle.yaml.
//
// The package reads files and nothing else: Markdown bodies and template actions are
// compiled by package render, customers and events live in package store.
//
//	set, err := campaign.Load("campaigns")
//	var probs campaign.Problems
//	if errors.As(err, &probs) { ... }
package campaign
