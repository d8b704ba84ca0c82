//! Protocol allocation under concurrency (SPEC §4): many tasks and two
//! "nodes" (separate pools on one database) never get the same number.

mod common;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use common::{Db, TestDb};
use pbx_bridge::store::Store;
use proptest::prelude::*;

async fn allocate_concurrently(db: Db, tasks: usize, each: usize) {
    let test_db = TestDb::new(db).await;
    let node_a = Store::connect(&test_db.url).await.unwrap();
    let node_b = Store::connect(&test_db.url).await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = if t % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..each {
                got.push(store.next_protocol(day).await.unwrap().to_string());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "duplicate protocol numbers");
    // Nothing failed, so the numbers are exactly the first N of the day.
    let expected: BTreeSet<_> = (1..=tasks * each)
        .map(|n| format!("20261121{n:06}"))
        .collect();
    assert_eq!(unique, expected);
    // Another day starts again at 1.
    let next_day = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    assert_eq!(
        node_a.next_protocol(next_day).await.unwrap().to_string(),
        "20261122000001"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_protocols_are_unique_across_tasks_and_nodes() {
    allocate_concurrently(Db::Sqlite, 32, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_protocols_are_unique_across_tasks_and_nodes() {
    allocate_concurrently(Db::Postgres, 32, 25).await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Whatever the mix of days and the number of concurrent allocators,
    /// each day's numbers are 1..=n with no duplicate.
    #[test]
    fn any_interleaving_of_days_stays_dense_and_unique(
        days in proptest::collection::vec(0u32..3, 1..60),
        tasks in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let test_db = TestDb::new(Db::Sqlite).await;
            let store = Store::connect(&test_db.url).await.unwrap();
            let mut handles = Vec::new();
            for chunk in days.chunks(days.len().div_ceil(tasks)) {
                let store = store.clone();
                let chunk = chunk.to_vec();
                handles.push(tokio::spawn(async move {
                    let mut got = Vec::new();
                    for d in chunk {
                        let day = NaiveDate::from_ymd_opt(2026, 1, 1 + d).unwrap();
                        got.push(store.next_protocol(day).await.unwrap().to_string());
                    }
                    got
                }));
            }
            let mut all = Vec::new();
            for h in handles {
                all.extend(h.await.unwrap());
            }
            for d in 0..3u32 {
                let prefix = format!("202601{:02}", 1 + d);
                let mut seqs: Vec<u32> = all
                    .iter()
                    .filter(|p| p.starts_with(&prefix))
                    .map(|p| p[8..].parse().unwrap())
                    .collect();
                seqs.sort_unstable();
                let n = days.iter().filter(|x| **x == d).count() as u32;
                assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
            }
        });
    }
}
