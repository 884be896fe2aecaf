package store

// Shards is the number of virtual shards customers are spread over (layout
// 2): every key of one customer, its entries in the due and wake indexes, its
// lease, its send ledger entries and the report counters its writes move are
// in its shard's hash slot, so each customer write is one MULTI/EXEC on one
// Redis Cluster node, and the indexes are one per shard. 16 shards spread a
// Cluster of up to 16 masters; fewer shards keep the scheduler's batches full
// (it claims shard by shard).
const Shards = 16

// shardTags are the hash tags of the shards: for shard i, the shortest number
// whose hash slot (CRC16 mod 16384, as Redis Cluster computes it) falls in
// the i-th sixteenth of the slots, so that the shards spread evenly over any
// Cluster whose masters hold contiguous slot ranges (TestShardTagsSpreadOverSlots
// checks them against a Cluster).
var shardTags = [Shards]string{"10", "3", "61", "43", "11", "2", "60", "42", "12", "1", "63", "41", "13", "0", "62", "40"}

// ShardOf returns the shard of customer id: the 32-bit FNV-1a hash of the ID
// (as hash/fnv's New32a computes it, inlined: every key of a customer is built
// with it), modulo Shards.
func ShardOf(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % Shards)
}

// ShardPrefix is the start of every key of shard under prefix: the prefix and
// the shard's hash tag, "retain:{10}:" for shard 0.
func ShardPrefix(prefix string, shard int) string { return prefix + "{" + shardTags[shard] + "}:" }

// CustomerPrefix is ShardPrefix of customer id's shard.
func CustomerPrefix(prefix, id string) string { return ShardPrefix(prefix, ShardOf(id)) }

// ByShard groups ids by shard, keeping their order within each shard; the
// groups come in shard order. A transaction, a script or an MGET may only
// take one group's keys (Redis Cluster).
func ByShard(ids []string) [][]string {
	if len(ids) == 0 {
		return nil
	}
	first := ShardOf(ids[0])
	same := true
	for _, id := range ids[1:] {
		if ShardOf(id) != first {
			same = false
			break
		}
	}
	if same {
		return [][]string{ids}
	}
	var groups [Shards][]string
	for _, id := range ids {
		i := ShardOf(id)
		groups[i] = append(groups[i], id)
	}
	var out [][]string
	for _, g := range groups {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}
