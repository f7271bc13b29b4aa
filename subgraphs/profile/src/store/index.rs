//! The in-memory adjacency index every embedded traversal runs on.
//!
//! Members are interned as dense `u32` indices. Neighbour lists live in a compressed sparse row
//! (CSR) layout — one `Vec<u32>` of neighbours, one `Vec<u64>` of offsets — because at a million
//! members and 50 million connections anything with a per-list header or pointer would double the
//! memory and scatter the lists over the heap. Lists are sorted, so "are these two connected" is
//! a binary search and mutual connections are a sorted-list intersection.
//!
//! CSR cannot grow in place, so changes go to an *overlay*: the changed member's whole list is
//! copied out, edited and consulted instead of the CSR slice. When the overlay holds more than a
//! fraction of all entries, [`AdjacencyIndex::compact`] folds it back into a fresh CSR.

use std::cell::RefCell;
use std::collections::HashMap;

/// A member's position in the index.
pub type NodeId = u32;

/// A neighbour list this many times longer than the other frontier is binary-searched rather
/// than scanned (matches [`intersect`]'s switch to galloping).
const GALLOP_RATIO: usize = 16;

/// Overlay entries beyond this share of the CSR (plus a floor) trigger a compaction.
const COMPACT_FLOOR: usize = 1 << 16;

/// Undirected graph of members: CSR base plus an overlay of edited neighbour lists.
#[derive(Debug, Default, Clone)]
pub struct AdjacencyIndex {
    offsets: Vec<u64>,
    targets: Vec<u32>,
    overlay: HashMap<NodeId, Vec<NodeId>>,
    overlay_entries: usize,
    nodes: u32,
}

impl AdjacencyIndex {
    /// An empty index.
    pub fn new() -> Self {
        AdjacencyIndex {
            offsets: vec![0],
            ..Default::default()
        }
    }

    /// Builds the CSR directly from an edge source, in two passes over it (count, then fill), so
    /// peak memory is the final arrays rather than an edge list plus the arrays.
    ///
    /// `source` is called twice and must emit the same edges both times (replay a seeded
    /// generator, or iterate a stored list). Self-loops and duplicates are dropped; every edge
    /// is stored in both directions.
    pub fn from_edge_source<F>(nodes: u32, mut source: F) -> Self
    where
        F: FnMut(&mut dyn FnMut(NodeId, NodeId)),
    {
        let n = nodes as usize;
        let mut degree = vec![0u64; n + 1];
        source(&mut |a, b| {
            if a != b && a < nodes && b < nodes {
                degree[a as usize] += 1;
                degree[b as usize] += 1;
            }
        });
        let mut offsets = Vec::with_capacity(n + 1);
        let mut total = 0u64;
        for d in &degree[..n] {
            offsets.push(total);
            total += d;
        }
        offsets.push(total);
        drop(degree);
        let mut targets = vec![0u32; total as usize];
        let mut cursor: Vec<u64> = offsets[..n].to_vec();
        source(&mut |a, b| {
            if a != b && a < nodes && b < nodes {
                targets[cursor[a as usize] as usize] = b;
                cursor[a as usize] += 1;
                targets[cursor[b as usize] as usize] = a;
                cursor[b as usize] += 1;
            }
        });
        drop(cursor);
        // Sort and de-duplicate each list, sliding lists down over the gaps duplicates leave.
        let mut write = 0usize;
        let mut start = 0usize;
        for v in 0..n {
            let end = offsets[v + 1] as usize;
            targets[start..end].sort_unstable();
            let list_start = write;
            let mut last: Option<u32> = None;
            for i in start..end {
                let t = targets[i];
                if last != Some(t) {
                    targets[write] = t;
                    write += 1;
                    last = Some(t);
                }
            }
            offsets[v] = list_start as u64;
            start = end;
        }
        offsets[n] = write as u64;
        targets.truncate(write);
        targets.shrink_to_fit();
        AdjacencyIndex {
            offsets,
            targets,
            overlay: HashMap::new(),
            overlay_entries: 0,
            nodes,
        }
    }

    /// Number of interned nodes (deleted members keep their slot, with no edges).
    pub fn node_count(&self) -> u32 {
        self.nodes
    }

    /// Number of undirected edges.
    pub fn edge_count(&self) -> usize {
        (0..self.nodes).map(|v| self.degree(v)).sum::<usize>() / 2
    }

    /// Bytes held by the CSR arrays (what the benchmark reports).
    pub fn csr_bytes(&self) -> usize {
        self.offsets.len() * 8 + self.targets.len() * 4
    }

    /// Adds a node with no edges and returns its id.
    pub fn add_node(&mut self) -> NodeId {
        let id = self.nodes;
        self.nodes += 1;
        id
    }

    /// `v`'s neighbours, sorted ascending.
    pub fn neighbours(&self, v: NodeId) -> &[NodeId] {
        if let Some(list) = self.overlay.get(&v) {
            return list;
        }
        let i = v as usize;
        if i + 1 >= self.offsets.len() {
            return &[];
        }
        &self.targets[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Number of `v`'s neighbours.
    pub fn degree(&self, v: NodeId) -> usize {
        self.neighbours(v).len()
    }

    /// Whether `a` and `b` are connected.
    pub fn are_connected(&self, a: NodeId, b: NodeId) -> bool {
        let (small, other) = if self.degree(a) <= self.degree(b) {
            (a, b)
        } else {
            (b, a)
        };
        self.neighbours(small).binary_search(&other).is_ok()
    }

    fn list_mut(&mut self, v: NodeId) -> &mut Vec<NodeId> {
        if !self.overlay.contains_key(&v) {
            let copy = self.neighbours(v).to_vec();
            self.overlay_entries += copy.len();
            self.overlay.insert(v, copy);
        }
        self.overlay.get_mut(&v).expect("inserted above")
    }

    /// Connects `a` and `b`; false if they already were (or `a == b`).
    pub fn connect(&mut self, a: NodeId, b: NodeId) -> bool {
        if a == b || a >= self.nodes || b >= self.nodes || self.are_connected(a, b) {
            return false;
        }
        for (x, y) in [(a, b), (b, a)] {
            let list = self.list_mut(x);
            let at = list.partition_point(|&n| n < y);
            list.insert(at, y);
        }
        self.overlay_entries += 2;
        self.maybe_compact();
        true
    }

    /// Disconnects `a` and `b`; false if they were not connected.
    pub fn disconnect(&mut self, a: NodeId, b: NodeId) -> bool {
        if !self.are_connected(a, b) {
            return false;
        }
        for (x, y) in [(a, b), (b, a)] {
            let list = self.list_mut(x);
            if let Ok(at) = list.binary_search(&y) {
                list.remove(at);
            }
        }
        true
    }

    /// Removes every edge of `v`; returns the former neighbours.
    pub fn isolate(&mut self, v: NodeId) -> Vec<NodeId> {
        let former = self.neighbours(v).to_vec();
        for &n in &former {
            let list = self.list_mut(n);
            if let Ok(at) = list.binary_search(&v) {
                list.remove(at);
            }
        }
        self.list_mut(v).clear();
        former
    }

    fn maybe_compact(&mut self) {
        if self.overlay_entries > COMPACT_FLOOR.max(self.targets.len() / 4) {
            self.compact();
        }
    }

    /// Folds the overlay into a fresh CSR.
    pub fn compact(&mut self) {
        let n = self.nodes as usize;
        let mut offsets = Vec::with_capacity(n + 1);
        let total: usize = (0..self.nodes).map(|v| self.degree(v)).sum();
        let mut targets = Vec::with_capacity(total);
        for v in 0..self.nodes {
            offsets.push(targets.len() as u64);
            targets.extend_from_slice(self.neighbours(v));
        }
        offsets.push(targets.len() as u64);
        self.offsets = offsets;
        self.targets = targets;
        self.overlay.clear();
        self.overlay_entries = 0;
    }

    /// Sorted intersection of two neighbour lists: the mutual connections of `a` and `b`.
    pub fn mutuals(&self, a: NodeId, b: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        intersect(self.neighbours(a), self.neighbours(b), |v| {
            out.push(v);
            true
        });
        out
    }

    /// A shortest path from `s` to `t` of at most 3 hops (`s` and `t` included), or `None` when
    /// `t` is further away (or `s == t`).
    ///
    /// This is a bidirectional BFS specialised to depth 3: hop 1 is a binary search, hop 2 an
    /// intersection of the two neighbour lists, hop 3 looks for an edge between the two
    /// frontiers. For that last step it expands the side whose frontier costs less to expand
    /// (fewer second-hop entries), checks each entry against a stamped mark array holding the
    /// other frontier, and stops at the first hit.
    pub fn shortest_path(&self, s: NodeId, t: NodeId) -> Option<Vec<NodeId>> {
        if s == t || s >= self.nodes || t >= self.nodes {
            return None;
        }
        let ns = self.neighbours(s);
        let nt = self.neighbours(t);
        if ns.is_empty() || nt.is_empty() {
            return None;
        }
        if self.are_connected(s, t) {
            return Some(vec![s, t]);
        }
        let mut middle = None;
        intersect(ns, nt, |v| {
            middle = Some(v);
            false
        });
        if let Some(m) = middle {
            return Some(vec![s, m, t]);
        }
        // Hop 3: is some member of one frontier connected to some member of the other? For
        // each member `u` of the expanded frontier, a short neighbour list is checked entry by
        // entry against a mark array holding the other frontier, and a long one (a hub's) by
        // binary-searching the other frontier's members in it, so a hub costs
        // |other| · log d(u) instead of d(u). Expand whichever side is cheaper by that measure;
        // compute the smaller frontier's cost fully and stop summing the other's once dearer.
        let s_first = ns.len() <= nt.len();
        let (first, second) = if s_first { (ns, nt) } else { (nt, ns) };
        let first_cost = self.expansion_cost(first, second.len(), usize::MAX);
        let second_cost = self.expansion_cost(second, first.len(), first_cost);
        let expand_first = first_cost <= second_cost;
        let (expand, marked) = if expand_first {
            (first, second)
        } else {
            (second, first)
        };
        // Which original side is expanded decides the orientation of the found path.
        let expanding_s = expand_first == s_first;
        let path = |u: NodeId, w: NodeId| {
            if expanding_s {
                vec![s, u, w, t]
            } else {
                vec![s, w, u, t]
            }
        };
        let gallop_above = marked.len().saturating_mul(GALLOP_RATIO);
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let stamp = scratch.next_stamp(self.nodes as usize);
            for &v in marked {
                scratch.marks[v as usize] = stamp;
            }
            for &u in expand {
                let list = self.neighbours(u);
                if list.len() > gallop_above {
                    let mut hit = None;
                    intersect(list, marked, |w| {
                        hit = Some(w);
                        false
                    });
                    if let Some(w) = hit {
                        return Some(path(u, w));
                    }
                    continue;
                }
                for &w in list {
                    if scratch.marks[w as usize] == stamp {
                        return Some(path(u, w));
                    }
                }
            }
            None
        })
    }

    /// What checking `frontier`'s neighbour lists against a frontier of `other` members costs
    /// (see [`AdjacencyIndex::shortest_path`]), stopping once it exceeds `cap`.
    fn expansion_cost(&self, frontier: &[NodeId], other: usize, cap: usize) -> usize {
        let gallop_above = other.saturating_mul(GALLOP_RATIO);
        let mut cost = 0usize;
        for &u in frontier {
            let d = self.degree(u);
            cost += if d > gallop_above {
                other * (usize::BITS - d.leading_zeros()) as usize
            } else {
                d
            };
            if cost > cap {
                break;
            }
        }
        cost
    }

    /// Members two hops from `v`, ranked by how many of `v`'s connections they know (most
    /// first, ties by `tie_key`), skipping `v`, its connections and anything `excluded` says to
    /// skip. Selects the top `limit` in linear time before sorting them, since a hub's second
    /// hop can hold most of the graph.
    pub fn suggestions<K: Ord>(
        &self,
        v: NodeId,
        limit: usize,
        excluded: impl Fn(NodeId) -> bool,
        tie_key: impl Fn(NodeId) -> K,
    ) -> Vec<(NodeId, usize)> {
        let mine = self.neighbours(v);
        let mut counts: HashMap<NodeId, usize> = HashMap::new();
        for &u in mine {
            for &w in self.neighbours(u) {
                if w != v {
                    *counts.entry(w).or_insert(0) += 1;
                }
            }
        }
        let mut ranked: Vec<(NodeId, usize)> = counts
            .into_iter()
            .filter(|&(w, _)| mine.binary_search(&w).is_err() && !excluded(w))
            .collect();
        let order = |a: &(NodeId, usize), b: &(NodeId, usize)| {
            b.1.cmp(&a.1).then_with(|| tie_key(a.0).cmp(&tie_key(b.0)))
        };
        if limit == 0 {
            return Vec::new();
        }
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit - 1, order);
            ranked.truncate(limit);
        }
        ranked.sort_unstable_by(order);
        ranked
    }
}

/// Calls `found` for each common element of two sorted lists until it returns false. Gallops
/// (binary search of the short list's items in the long one) when the sizes differ a lot, since
/// a hub's list can be thousands of times longer than an ordinary member's.
fn intersect(a: &[u32], b: &[u32], mut found: impl FnMut(u32) -> bool) {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return;
    }
    if long.len() / short.len() > GALLOP_RATIO {
        let mut rest = long;
        for &x in short {
            match rest.binary_search(&x) {
                Ok(i) => {
                    if !found(x) {
                        return;
                    }
                    rest = &rest[i + 1..];
                }
                Err(i) => rest = &rest[i..],
            }
            if rest.is_empty() {
                return;
            }
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
    while i < short.len() && j < long.len() {
        match short[i].cmp(&long[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                if !found(short[i]) {
                    return;
                }
                i += 1;
                j += 1;
            }
        }
    }
}

/// Per-thread mark array for the 3-hop step, stamped so it is never cleared between queries.
struct Scratch {
    marks: Vec<u32>,
    stamp: u32,
}

impl Scratch {
    fn next_stamp(&mut self, nodes: usize) -> u32 {
        if self.marks.len() < nodes {
            self.marks.resize(nodes, 0);
        }
        if self.stamp == u32::MAX {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.stamp = 0;
        }
        self.stamp += 1;
        self.stamp
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch { marks: Vec::new(), stamp: 0 }) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(nodes: u32, edges: &[(u32, u32)]) -> AdjacencyIndex {
        AdjacencyIndex::from_edge_source(nodes, |emit| {
            for &(a, b) in edges {
                emit(a, b);
            }
        })
    }

    #[test]
    fn builds_sorted_deduplicated_symmetric_lists() {
        let g = graph(4, &[(0, 2), (2, 0), (0, 1), (3, 3), (1, 2)]);
        assert_eq!(g.neighbours(0), &[1, 2]);
        assert_eq!(g.neighbours(2), &[0, 1]);
        assert_eq!(g.neighbours(3), &[] as &[u32]);
        assert_eq!(g.edge_count(), 3);
    }

    #[test]
    fn paths_of_each_length_and_beyond() {
        // 0-1-2-3-4 chain.
        let g = graph(5, &[(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(g.shortest_path(0, 1), Some(vec![0, 1]));
        assert_eq!(g.shortest_path(0, 2), Some(vec![0, 1, 2]));
        assert_eq!(g.shortest_path(0, 3), Some(vec![0, 1, 2, 3]));
        assert_eq!(g.shortest_path(3, 0), Some(vec![3, 2, 1, 0]));
        assert_eq!(g.shortest_path(0, 4), None);
        assert_eq!(g.shortest_path(0, 0), None);
    }

    #[test]
    fn three_hop_path_orientation_when_either_side_expands() {
        // s=0 has a cheap frontier, t=5 an expensive one (node 4 is a hub).
        let mut edges = vec![(0, 1), (1, 4), (4, 5)];
        for x in 6..40 {
            edges.push((4, x));
        }
        let g = graph(40, &edges);
        let p = g.shortest_path(0, 5).unwrap();
        assert_eq!(p, vec![0, 1, 4, 5]);
        assert_eq!((p[0], p[3]), (0, 5));
        for w in p.windows(2) {
            assert!(g.are_connected(w[0], w[1]), "{p:?}");
        }
        let back = g.shortest_path(5, 0).unwrap();
        assert_eq!(back, vec![5, 4, 1, 0]);
        for w in back.windows(2) {
            assert!(g.are_connected(w[0], w[1]), "{back:?}");
        }
    }

    /// Plain BFS distance, capped at 4 (= beyond 3 hops).
    fn reference_distance(g: &AdjacencyIndex, s: u32, t: u32) -> usize {
        let mut dist = vec![usize::MAX; g.node_count() as usize];
        let mut frontier = vec![s];
        dist[s as usize] = 0;
        for d in 1..=3 {
            let mut next = Vec::new();
            for &v in &frontier {
                for &w in g.neighbours(v) {
                    if dist[w as usize] == usize::MAX {
                        dist[w as usize] = d;
                        next.push(w);
                    }
                }
            }
            frontier = next;
        }
        dist[t as usize].min(4)
    }

    #[test]
    fn agrees_with_plain_bfs_on_a_power_law_graph() {
        use crate::store::synthetic::{SocialGraphSpec, SplitMix64};
        // Sparse enough that every degree, including out of network, occurs.
        let spec = SocialGraphSpec {
            max_degree: 300.0,
            ..SocialGraphSpec::new(5_000, 6_000)
        };
        let mut g = spec.build_index();
        let mut rng = SplitMix64::new(3);
        let mut seen = [0usize; 5];
        for round in 0..2 {
            for _ in 0..2_000 {
                let (s, t) = (rng.below(5_000), rng.below(5_000));
                if s == t {
                    continue;
                }
                let expected = reference_distance(&g, s, t);
                let path = g.shortest_path(s, t);
                let got = path.as_ref().map_or(4, |p| p.len() - 1);
                assert_eq!(got, expected, "{s} -> {t}: {path:?}");
                if let Some(p) = path {
                    assert_eq!((p[0], p[p.len() - 1]), (s, t));
                    for w in p.windows(2) {
                        assert!(g.are_connected(w[0], w[1]), "{p:?}");
                    }
                }
                seen[expected] += 1;
            }
            // Second round on an edited graph: overlay lists must behave like CSR ones.
            if round == 0 {
                for _ in 0..2_000 {
                    let (a, b) = (rng.below(5_000), rng.below(5_000));
                    g.connect(a, b);
                    let (c, d) = (rng.below(5_000), rng.below(5_000));
                    g.disconnect(c, d);
                }
            }
        }
        assert!(seen[1..].iter().all(|&n| n > 0), "{seen:?}");
    }

    #[test]
    fn overlay_edits_and_compaction_agree() {
        let mut g = graph(4, &[(0, 1)]);
        assert!(g.connect(2, 1));
        assert!(!g.connect(1, 2));
        assert!(!g.connect(3, 3));
        let v = g.add_node();
        assert!(g.connect(v, 0));
        assert_eq!(g.neighbours(1), &[0, 2]);
        assert_eq!(g.mutuals(0, 2), vec![1]);
        assert!(g.disconnect(0, 1));
        assert!(!g.disconnect(0, 1));
        assert_eq!(g.isolate(2), vec![1]);
        g.compact();
        assert_eq!(g.neighbours(0), &[v]);
        assert_eq!(g.neighbours(1), &[] as &[u32]);
        assert_eq!(g.edge_count(), 1);
    }

    #[test]
    fn galloping_and_merging_intersections_match() {
        let long: Vec<u32> = (0..1000).map(|x| x * 3).collect();
        let short = vec![3, 4, 300, 2997, 5000];
        let mut got = Vec::new();
        intersect(&short, &long, |v| {
            got.push(v);
            true
        });
        assert_eq!(got, vec![3, 300, 2997]);
        let mut got = Vec::new();
        intersect(&[1, 2, 3], &[2, 3, 4], |v| {
            got.push(v);
            true
        });
        assert_eq!(got, vec![2, 3]);
    }

    #[test]
    fn suggestions_rank_by_mutuals() {
        // 0 knows 1,2,3; 4 knows 1,2,3; 5 knows 1; 6 is excluded.
        let g = graph(
            7,
            &[
                (0, 1),
                (0, 2),
                (0, 3),
                (4, 1),
                (4, 2),
                (4, 3),
                (5, 1),
                (6, 2),
            ],
        );
        let s = g.suggestions(0, 10, |w| w == 6, |w| w);
        assert_eq!(
            g.suggestions(0, 1, |_| false, std::cmp::Reverse),
            vec![(4, 3)]
        );
        assert_eq!(s, vec![(4, 3), (5, 1)]);
    }
}
