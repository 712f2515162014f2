// Kafka export (librdkafka): every event, as its JSON document, to a topic
// on a Kafka cluster. See docs/kafka.md for flags, delivery semantics and
// the message format.
//
// Threading: Write() may be called from any thread (the agent calls it from
// its event loop); it only enqueues into librdkafka and never blocks.
// Flush(), called by the agent after each batch of events, serves the
// delivery reports on that thread; a background thread of this sink also
// serves librdkafka's callbacks (delivery reports, errors, statistics) with
// rd_kafka_poll() every 100 ms, so the counters and the broker state stay
// current even while no events flow. Stats(), KafkaCounters() and
// Healthy() are safe from any thread (metrics server).
#ifndef EXECMON_AGENT_SINK_KAFKA_SINK_H_
#define EXECMON_AGENT_SINK_KAFKA_SINK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/sink/event_sink.h"

// librdkafka's handles, without pulling rdkafka.h into every includer.
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;

namespace execmon {

struct KafkaCallbacks;

// What the message key is (partitioning: one key's events stay in order).
enum class KafkaKey {
  kNode,    // the event's node
  kPodUid,  // the pod's UID; the node while the pod is unknown
  kNone,    // no key: librdkafka spreads events over partitions
};

// "node", "pod_uid" or "none".
absl::StatusOr<KafkaKey> ParseKafkaKey(absl::string_view text);

// The value of --kafka_property: librdkafka properties, key=value. Each
// occurrence of the flag adds to the list, and one occurrence may hold
// several, comma-separated; a comma-separated piece that does not start with
// `name=` continues the previous value (debug=broker,topic,msg).
struct KafkaPropertyList {
  std::vector<std::string> items;  // "key=value", in command-line order
};
// absl flag support. Parsing accumulates across the flag's occurrences (see
// kafka_sink.cc), which is what makes the flag repeatable.
bool AbslParseFlag(absl::string_view text, KafkaPropertyList* out,
                   std::string* error);
std::string AbslUnparseFlag(const KafkaPropertyList& list);

struct KafkaOptions {
  std::string brokers;  // bootstrap.servers: HOST:PORT,...
  std::string topic = "execmon.events";
  bool topic_by_type = false;  // events go to <topic>.<type>
  KafkaKey key = KafkaKey::kNode;
  // librdkafka properties applied after (so overriding) the sink's defaults.
  std::vector<std::pair<std::string, std::string>> properties;
  uint64_t queue_max_events = 100000;    // queue.buffering.max.messages
  uint64_t queue_max_bytes = 268435456;  // queue.buffering.max.kbytes * 1024
  absl::Duration queue_max_age = absl::Minutes(5);   // message.timeout.ms
  absl::Duration flush_timeout = absl::Seconds(10);  // Close() waits at most
};

// Splits "key=value" items (KafkaPropertyList::items) into pairs.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
ParseKafkaProperties(const std::vector<std::string>& items);

// Exact delivery accounting. At any time:
//   produced == delivered + failed + dropped_timeout + dropped_shutdown
//               + (events still in librdkafka's queue)
// Events dropped before they were produced (dropped_queue_full,
// dropped_other) are not in `produced`.
struct KafkaStats {
  uint64_t produced = 0;   // accepted by librdkafka (rd_kafka_producev)
  uint64_t delivered = 0;  // acknowledged by the broker (acks=all)
  uint64_t failed = 0;     // permanently rejected (delivery report error)
  uint64_t dropped_queue_full = 0;  // producer queue full (the bound)
  uint64_t dropped_timeout = 0;     // not delivered within queue_max_age
  uint64_t dropped_shutdown = 0;    // still undelivered at Close()
  uint64_t dropped_other = 0;       // other produce errors
  uint64_t queue_depth = 0;         // rd_kafka_outq_len
  bool brokers_up = false;
};

// Per-reason breakdown of `failed` and `dropped_other` (reasons are
// librdkafka error names, lower case: "msg_size_too_large", ...).
struct KafkaReasons {
  absl::btree_map<std::string, uint64_t> failed;
  absl::btree_map<std::string, uint64_t> dropped_other;
};

class KafkaSink : public EventSink {
 public:
  // Validates the options, configures librdkafka (an invalid property is an
  // error naming it) and starts the producer. Does not wait for brokers.
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(
      const KafkaOptions& options);
  ~KafkaSink() override;

  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  // Enqueues the event; never blocks. An event that cannot be enqueued is
  // counted (dropped_queue_full / dropped_other) and OkStatus is returned.
  absl::Status Write(const EventMeta& meta, absl::string_view json) override;
  // Serves delivery reports (librdkafka sends on its own within linger.ms).
  // Never blocks.
  absl::Status Flush() override;
  // Waits at most min(deadline, flush_timeout) for delivery, then drops (and
  // counts as dropped_shutdown) what is left and logs the final counters.
  absl::Status Close(absl::Duration deadline) override;
  // False while no broker is reachable, or after a fatal producer error.
  bool Healthy() const override;
  // For the metrics exporter: queue, delivered, failed, dropped by reason
  // ("queue_full", "timeout", "shutdown", and other produce errors).
  SinkStats Stats() const override;
  absl::string_view name() const override { return "kafka"; }

  KafkaStats KafkaCounters() const;
  KafkaReasons Reasons() const;

 private:
  friend struct KafkaCallbacks;  // kafka_sink.cc: librdkafka's callbacks
  explicit KafkaSink(const KafkaOptions& options);

  // What the callbacks do.
  void OnDelivery(int err);
  void OnError(int err, const char* reason);
  void OnStats(const char* json, size_t len);
  void SetBrokersUp(bool up, absl::string_view why);

  rd_kafka_topic_t* TopicFor(absl::string_view type);
  void CountDroppedOther(absl::string_view reason);
  void PollLoop();
  void StopPolling();
  uint64_t Outstanding() const;
  std::string CountersLine() const;

  KafkaOptions options_;
  const std::string schema_;  // the "schema" header: the event contract
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* topic_ = nullptr;  // options_.topic, unless by type

  absl::Mutex topics_mu_;
  // Type -> <topic>.<type> when topic_by_type.
  absl::flat_hash_map<std::string, rd_kafka_topic_t*> typed_topics_
      ABSL_GUARDED_BY(topics_mu_);

  std::atomic<uint64_t> produced_{0};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> dropped_queue_full_{0};
  std::atomic<uint64_t> dropped_timeout_{0};
  std::atomic<uint64_t> dropped_shutdown_{0};
  std::atomic<uint64_t> dropped_other_{0};

  mutable absl::Mutex reasons_mu_;
  KafkaReasons reasons_ ABSL_GUARDED_BY(reasons_mu_);

  mutable absl::Mutex state_mu_;
  // -1 unknown (start-up), 0 all brokers down, 1 at least one broker up.
  int brokers_state_ ABSL_GUARDED_BY(state_mu_) = -1;
  // When each recurring problem was last logged (rate limit).
  absl::flat_hash_map<std::string, absl::Time> error_logged_
      ABSL_GUARDED_BY(state_mu_);
  std::atomic<bool> brokers_up_{false};
  std::atomic<bool> fatal_{false};

  // Set once Close() has settled the accounting: later delivery reports
  // (none are expected) no longer change the counters.
  std::atomic<bool> closed_{false};
  absl::Notification stop_polling_;
  std::thread poller_;
};

}  // namespace execmon

#endif  // EXECMON_AGENT_SINK_KAFKA_SINK_H_
