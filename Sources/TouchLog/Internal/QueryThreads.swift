import DequeModule
import Dispatch
import Synchronization
import TouchLogStorage

/// The threads a store's queries run on, at a lower scheduling priority than appends (a higher nice value): when both
/// want a busy CPU, appends get more of it and a query waits a little longer, so that ingest keeps its rate under
/// queries. Query work blocks on reads and locks, so it runs on threads of its own rather than on the pools Swift
/// concurrency runs tasks on; a job is taken by the first free thread, in the order given.
final class QueryThreads: Sendable {
    private let jobs = Mutex<Deque<@Sendable () -> Void>>([])
    private let ready = DispatchSemaphore(value: 0)

    /// Starts `count` threads at nice value `nice`. They run for the life of the process.
    init(count: Int, nice: Int32) {
        for _ in 0..<count {
            SystemThread.detached { [self] in
                if nice > 0 { Platform.setCurrentThreadNice(nice) }
                while true {
                    ready.wait()
                    guard let job = jobs.withLock({ $0.popFirst() }) else { continue }
                    job()
                }
            }
        }
    }

    /// Runs `job` on the first free thread.
    func async(_ job: @escaping @Sendable () -> Void) {
        jobs.withLock { $0.append(job) }
        ready.signal()
    }
}

extension QueryThreads {
    private static let pools = Mutex<[Int32: QueryThreads]>([:])

    /// The process's query threads at `priority`, started the first time they are asked for: twice as many as
    /// there are cores, at least 4 (a query can wait on a read or a lock).
    static func shared(_ priority: QueryPriority) -> QueryThreads {
        pools.withLock { pools in
            if let pool = pools[priority.nice] { return pool }
            let pool = QueryThreads(count: max(4, 2 * Platform.processorCount), nice: priority.nice)
            pools[priority.nice] = pool
            return pool
        }
    }
}
