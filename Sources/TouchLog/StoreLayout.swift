import TouchLogStorage

/// The files of a store directory.
///
/// ```
/// STORE/
///   LOCK          held (flock) by the one writing process; holds its pid
///   log/          00000000000000000000.tlog, …: the log, named by first offset
///   log-format1/  after `touchlog migrate`: the format-1 (or log-format2/: format-2) log it replaced, kept for audits
///   keys/         format 3: profiles.tlk, the pads that seal profile identifiers (``ProfileKeyFile``)
///   snapshots/    saved projection states (derived; safe to delete)
///   segments/     segment definitions, every version kept
/// ```
struct StoreLayout {
    let root: String

    var log: String { root + "/log" }
    var lock: String { root + "/LOCK" }
    var snapshots: String { root + "/snapshots" }
    /// Format 3: the key file (``ProfileKeyFile``).
    var profileKeys: String { root + "/keys/profiles.tlk" }
    var segments: String { root + "/segments" }

    /// True when `root` holds a store (its `log/` directory exists).
    var exists: Bool {
        SystemFile.isDirectory(log)
    }

    func requireExisting() throws(TouchLogError) {
        if !exists { StoreMigration.finishInterruptedMigration(self) }
        guard exists else {
            throw TouchLogError(
                code: .notFound, message: "no touchlog store at \(root) (create one with `touchlog append`)")
        }
    }

    /// Creates the directories of a new store (the writer does this; existing ones are kept).
    /// New directories are synced with their parents, so a crash cannot lose the store's skeleton.
    func create() throws(TouchLogError) {
        if !exists { StoreMigration.finishInterruptedMigration(self) }
        var created = false
        for path in [root, log, snapshots, segments] {
            do { created = try SystemFile.makeDirectory(path) || created } catch {
                throw TouchLogError(code: .io, message: "cannot create \(path): \(error.reason)")
            }
        }
        if created {
            let parent = root.contains("/") ? String(root[..<root.lastIndex(of: "/")!]) : "."
            for directory in [parent.isEmpty ? "/" : parent, root] {
                do { try SystemFile.syncDirectory(directory) } catch {
                    throw TouchLogError(code: .io, message: "cannot sync directory \(directory): \(error.reason)")
                }
            }
        }
    }
}
