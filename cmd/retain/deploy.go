package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/retainmail/retain/campaign"
	"github.com/retainmail/retain/store"
)

// recordDeploy records set as the campaigns now running (store.RecordDeploy)
// and logs what changed since the last worker or scheduler started: one line
// naming the campaigns and steps added, removed, renamed and moved, so operators
// see what a deploy did. Of processes starting at once on the same new
// campaigns, one logs the change and the others find them unchanged. A failure
// is logged as a warning: the process starts all the same.
func recordDeploy(ctx context.Context, log *slog.Logger, st *store.Store, set *campaign.Set) {
	m := set.Manifest()
	b, err := json.Marshal(m)
	if err != nil {
		log.Warn("could not record the deployed campaigns", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := st.RecordDeploy(ctx, b)
	if err != nil {
		log.Warn("could not record the deployed campaigns", "hash", m.Hash, "error", err)
		return
	}
	if raw == nil {
		log.Info("campaigns deployed", "hash", m.Hash, "campaigns", len(m.Campaigns), "steps", m.Steps())
		return
	}
	var prev campaign.Manifest
	if err := json.Unmarshal(raw, &prev); err != nil {
		log.Warn("campaigns deployed; the previous record is unreadable, so what changed is unknown", "hash", m.Hash, "error", err)
		return
	}
	if prev.Hash == m.Hash {
		log.Debug("campaigns unchanged since the last start", "hash", m.Hash)
		return
	}
	changes := campaign.CompareManifests(&prev, m).Summary()
	if changes == "" {
		changes = "no campaign or step added, removed, renamed or edited" // a manifest from another retain version
	}
	log.Info("campaigns changed since the last start", "old_hash", prev.Hash, "new_hash", m.Hash, "changes", changes)
}
