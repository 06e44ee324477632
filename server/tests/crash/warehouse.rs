//! The warehouse of the crash test: a SQLite `customers` table that rounds change with
//! updates, inserts and deletes (ids are never reused, values never repeat).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// `id -> (email, plan)`.
pub(crate) type Rows = BTreeMap<i64, (String, String)>;

/// The SQLite file and what it holds.
pub(crate) struct Warehouse {
    /// The database file.
    pub(crate) path: PathBuf,
    conn: rusqlite::Connection,
    next_id: i64,
    rng: StdRng,
}

impl Warehouse {
    /// Creates `customers` with ids `1..=rows` in a new database at `path`.
    pub(crate) fn create(path: &Path, rows: i64, seed: u64) -> Warehouse {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, plan TEXT NOT NULL)",
        )
        .unwrap();
        let mut w = Warehouse {
            path: path.to_path_buf(),
            conn,
            next_id: 1,
            rng: StdRng::seed_from_u64(seed),
        };
        w.insert(0, rows);
        w
    }

    fn insert(&mut self, round: u32, n: i64) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare("INSERT INTO customers (id, email, plan) VALUES (?1, ?2, ?3)")
                .unwrap();
            for id in self.next_id..self.next_id + n {
                stmt.execute(rusqlite::params![
                    id,
                    format!("c{id}@r{round}.example"),
                    format!("free-r{round}")
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        self.next_id += n;
    }

    /// One round of changes: `updates` rows get a new plan, `inserts` new rows, `deletes` rows
    /// removed (random, distinct). Returns how many rows were updated, inserted, deleted.
    pub(crate) fn change(
        &mut self,
        round: u32,
        updates: usize,
        inserts: i64,
        deletes: usize,
    ) -> (usize, i64, usize) {
        let ids: Vec<i64> = self.rows().keys().copied().collect();
        let picked: Vec<i64> = ids
            .choose_multiple(&mut self.rng, updates + deletes)
            .copied()
            .collect();
        let (to_update, to_delete) = picked.split_at(updates.min(picked.len()));
        let tx = self.conn.transaction().unwrap();
        for id in to_update {
            let plan = format!("plan-r{round}-{}", self.rng.random_range(0..1_000_000));
            tx.execute(
                "UPDATE customers SET plan = ?1 WHERE id = ?2",
                rusqlite::params![plan, id],
            )
            .unwrap();
        }
        for id in to_delete {
            tx.execute("DELETE FROM customers WHERE id = ?1", [id])
                .unwrap();
        }
        tx.commit().unwrap();
        self.insert(round, inserts);
        (to_update.len(), inserts, to_delete.len())
    }

    /// Every row.
    pub(crate) fn rows(&self) -> Rows {
        let mut stmt = self
            .conn
            .prepare("SELECT id, email, plan FROM customers")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A random number in `range` from the warehouse's seeded generator.
    pub(crate) fn random(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.rng.random_range(range)
    }
}
