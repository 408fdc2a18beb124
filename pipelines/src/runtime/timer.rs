//! One thread for the process that runs periodic tasks (RTCP reports, for
//! one), instead of a thread or a GStreamer clock wait per task. A task says when it wants to run next; dropping
//! its [`Timer`] ends it. Tasks must be short and must not block.

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// A task's body: runs once, returns the delay until its next run.
pub(crate) type Task = dyn Fn() -> Duration + Send + Sync;

/// A scheduled task; dropping it stops the task (a run already under way
/// finishes).
pub(crate) struct Timer {
    _task: Arc<Task>,
}

struct Schedule {
    tasks: Mutex<Vec<(Instant, Weak<Task>)>>,
    /// Woken when a task is added, which may be due before the earliest one.
    added: Condvar,
}

/// Runs `task` after `first`, then after whatever delay each run returns.
pub(crate) fn schedule(first: Duration, task: Arc<Task>) -> Timer {
    let schedule = shared();
    schedule.tasks.lock().unwrap().push((Instant::now() + first, Arc::downgrade(&task)));
    schedule.added.notify_one();
    Timer { _task: task }
}

fn shared() -> &'static Schedule {
    static SCHEDULE: OnceLock<&'static Schedule> = OnceLock::new();
    SCHEDULE.get_or_init(|| {
        let schedule: &'static Schedule =
            Box::leak(Box::new(Schedule { tasks: Mutex::default(), added: Condvar::new() }));
        std::thread::Builder::new()
            .name("timer".into())
            .spawn(move || run(schedule))
            .expect("spawning the timer thread");
        schedule
    })
}

fn run(schedule: &Schedule) {
    let mut tasks = schedule.tasks.lock().unwrap();
    loop {
        let now = Instant::now();
        tasks.retain(|(_, task)| task.strong_count() > 0);
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut *tasks).into_iter().partition(|(at, _)| *at <= now);
        *tasks = waiting;
        if due.is_empty() {
            let next = tasks.iter().map(|(at, _)| at.saturating_duration_since(now)).min();
            tasks = schedule.added.wait_timeout(tasks, next.unwrap_or(Duration::from_secs(3600))).unwrap().0;
            continue;
        }
        // Run without the lock: a task may schedule another.
        drop(tasks);
        let rescheduled: Vec<(Instant, Weak<Task>)> = due
            .into_iter()
            .filter_map(|(_, weak)| {
                let delay = weak.upgrade()?();
                Some((Instant::now() + delay, weak))
            })
            .collect();
        tasks = schedule.tasks.lock().unwrap();
        tasks.extend(rescheduled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_at_the_delays_it_asks_for_until_its_timer_is_dropped() {
        // Only lower bounds on time: a loaded machine may run a task late,
        // never early.
        let runs = Arc::new(Mutex::new(Vec::<Instant>::new()));
        let counted = runs.clone();
        let started = Instant::now();
        let timer = schedule(
            Duration::from_millis(10),
            Arc::new(move || {
                counted.lock().unwrap().push(Instant::now());
                Duration::from_millis(20)
            }),
        );
        let until = started + Duration::from_secs(10);
        while runs.lock().unwrap().len() < 4 {
            assert!(Instant::now() < until, "the task ran {} times in 10 s", runs.lock().unwrap().len());
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(timer);
        let seen = runs.lock().unwrap().clone();
        assert!(seen[0] - started >= Duration::from_millis(10), "first run before its 10 ms");
        for pair in seen.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(20), "a run came sooner than the 20 ms asked: {seen:?}");
        }
        // A run already under way when the timer went may still finish.
        std::thread::sleep(Duration::from_millis(60));
        let after = runs.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(runs.lock().unwrap().len(), after, "no run once the timer is dropped");
    }
}
