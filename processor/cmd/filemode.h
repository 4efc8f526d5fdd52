/* filemode: `kanon process`, the same pipeline over Avro object container
 * files instead of Kafka. The input file's writer schema picks the config
 * schema (an identical schema, else the same record name, whose roles are
 * then compiled against the file's own schema). Output is a container file
 * of DeidEvent. Rejected records go to an optional JSON-lines file with their
 * index and reason; the raw record is never written there.
 *
 * The input is read block by block (container.h) and each block is split
 * into records by the writer schema's decoder. Damage costs what it touches
 * and no more: a record that does not decode loses the rest of its block,
 * bytes that are no block are skipped to the next sync marker; each loss is
 * one dead-letter line with its offset, and the run returns -EBADMSG saying
 * how many parts were skipped, after processing every other block.
 *
 * OUT and the dead-letter file are written as "<name>.kanon-tmp-<pid>"
 * beside them, synced, and renamed into place only once complete (a
 * skipped damaged part aside, as the output is then still valid): a run
 * that fails (a full disk, an unreadable input) leaves an older OUT as it
 * was. A dead-letter path that is not a regular file (/dev/stderr) is
 * written directly. */
#ifndef KN_FILEMODE_H
#define KN_FILEMODE_H

#include <stdint.h>

#include "config.h"
#include "pipeline.h"

struct kn_file_result {
	/* read = written + dead + dropped (withheld by the policy); records lost
	 * in a readable block count as read and dead. */
	int64_t read, written, dead, dropped;
};

/* 0, or -EINVAL with errstr saying which two of the input, output and
 * dead-letter paths name one file (kanon never writes over its input, and
 * the two outputs would corrupt each other). */
int kn_filemode_check_paths(const char *in, const char *out, const char *dead, char *errstr,
			    size_t errstr_size);

int kn_filemode_process(const struct kn_config *c, const char *in_path, const char *out_path,
			const char *dead_path, struct kn_file_result *res, char *errstr,
			size_t errstr_size);

#endif
