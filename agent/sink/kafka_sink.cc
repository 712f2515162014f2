#include "agent/sink/kafka_sink.h"

#include <librdkafka/rdkafka.h>
#include <syslog.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/base/const_init.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/log.h"
#include "agent/event/json_writer.h"
#include "rapidjson/document.h"

namespace execmon {
namespace {

// How often a recurring problem (a failure reason, queue full, an error
// from librdkafka) is logged at most; state changes are logged as they
// happen.
constexpr absl::Duration kLogEvery = absl::Seconds(60);
// After the flush deadline, how long Close() waits for librdkafka to report
// the purged messages (normally immediate).
constexpr absl::Duration kPurgeReportWait = absl::Seconds(1);
// How often the poller thread serves librdkafka's callbacks (delivery
// reports that Flush() has not served, errors, statistics).
constexpr absl::Duration kPollEvery = absl::Milliseconds(100);

// librdkafka's error name as a counter reason: "_MSG_TIMED_OUT" ->
// "msg_timed_out".
std::string ReasonName(rd_kafka_resp_err_t err) {
  absl::string_view v = rd_kafka_err2name(err);
  while (absl::ConsumePrefix(&v, "_")) {
  }
  return absl::AsciiStrToLower(v);
}

bool IsPropertyName(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

// "key=value" with a plausible librdkafka property name before the '='.
bool LooksLikeProperty(absl::string_view item) {
  size_t eq = item.find('=');
  return eq != absl::string_view::npos && IsPropertyName(item.substr(0, eq));
}

bool ValidTopicName(absl::string_view t) {
  if (t.empty() || t.size() > 249 || t == "." || t == "..") return false;
  for (char c : t) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

int ClampMs(absl::Duration d) {
  int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<int>(std::clamp<int64_t>(ms, 0, INT_MAX));
}

const char* KeyName(KafkaKey k) {
  switch (k) {
    case KafkaKey::kNode:
      return "node";
    case KafkaKey::kPodUid:
      return "pod_uid";
    case KafkaKey::kNone:
      return "none";
  }
  return "?";
}

// Occurrences of --kafka_property seen so far. absl parses each occurrence
// of a flag into a fresh default value, keeping only the last; accumulating
// here makes the flag repeatable.
ABSL_CONST_INIT absl::Mutex g_property_flag_mu(absl::kConstInit);
std::vector<std::string>& PropertyFlagItems()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_property_flag_mu) {
  static auto* items = new std::vector<std::string>();
  return *items;
}

// librdkafka's own log lines (from its threads). Connection failures repeat
// on every reconnect: the sink logs broker state changes itself, so these
// are debug output, except configuration warnings and critical conditions.
void LogCb(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= LOG_CRIT) {
    LogError("kafka: librdkafka: ", fac, ": ", buf);
  } else if (std::strcmp(fac, "CONFWARN") == 0) {
    LogWarning("kafka: librdkafka: ", buf);
  } else {
    LogDebug("kafka: librdkafka: ", fac, ": ", buf);
  }
}

}  // namespace

// librdkafka's callbacks; the opaque is the sink. They run on the thread
// that calls rd_kafka_poll/rd_kafka_flush (the poller, or Close()).
struct KafkaCallbacks {
  static void Delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<KafkaSink*>(opaque)->OnDelivery(m->err);
  }
  static void Error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<KafkaSink*>(opaque)->OnError(err, reason);
  }
  static int Stats(rd_kafka_t*, char* json, size_t len, void* opaque) {
    static_cast<KafkaSink*>(opaque)->OnStats(json, len);
    return 0;  // librdkafka frees json
  }
};

absl::StatusOr<KafkaKey> ParseKafkaKey(absl::string_view text) {
  if (text == "node") return KafkaKey::kNode;
  if (text == "pod_uid") return KafkaKey::kPodUid;
  if (text == "none") return KafkaKey::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("--kafka_key=", text, ": want pod_uid, node or none"));
}

bool AbslParseFlag(absl::string_view text, KafkaPropertyList* out,
                   std::string* error) {
  std::vector<std::string> items;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    if (LooksLikeProperty(piece)) {
      items.emplace_back(piece);
    } else if (!items.empty()) {
      absl::StrAppend(&items.back(), ",", piece);  // a value with commas
    } else {
      *error = absl::StrCat("'", piece, "': want key=value");
      return false;
    }
  }
  absl::MutexLock lock(&g_property_flag_mu);
  std::vector<std::string>& all = PropertyFlagItems();
  all.insert(all.end(), items.begin(), items.end());
  out->items = all;
  return true;
}

std::string AbslUnparseFlag(const KafkaPropertyList& list) {
  return absl::StrJoin(list.items, ",");
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
ParseKafkaProperties(const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--kafka_property=", item, ": want key=value"));
    }
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

KafkaSink::KafkaSink(const KafkaOptions& options)
    : options_(options), schema_(absl::StrCat(kSchemaVersion)) {}

absl::StatusOr<std::unique_ptr<KafkaSink>> KafkaSink::Create(
    const KafkaOptions& options) {
  if (options.brokers.empty()) {
    return absl::InvalidArgumentError("--kafka_brokers: empty");
  }
  // The longest suffix --kafka_topic_by_type adds is ".snapshot".
  if (!ValidTopicName(options.topic) ||
      (options.topic_by_type && options.topic.size() > 249 - 9)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka_topic=", options.topic,
                     ": want 1 to 249 characters from [a-zA-Z0-9._-] (240 with "
                     "--kafka_topic_by_type)"));
  }
  if (options.queue_max_events < 1 || options.queue_max_events > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka_queue_max_events=", options.queue_max_events,
                     ": want 1 to ", INT_MAX));
  }
  const uint64_t kbytes = (options.queue_max_bytes + 1023) / 1024;
  if (kbytes < 1 || kbytes > INT_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka_queue_max_bytes=", options.queue_max_bytes,
                     ": want 1 to ", uint64_t{INT_MAX} * 1024));
  }
  if (options.queue_max_age < absl::Milliseconds(1) ||
      options.queue_max_age > absl::Milliseconds(INT_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kafka_queue_max_age=", absl::FormatDuration(options.queue_max_age),
        ": want 1ms to ", absl::FormatDuration(absl::Milliseconds(INT_MAX))));
  }
  if (options.flush_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kafka_flush_timeout=", absl::FormatDuration(options.flush_timeout),
        ": must not be negative"));
  }

  std::unique_ptr<KafkaSink> sink(new KafkaSink(options));
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& key, const std::string& value) {
    err[0] = '\0';
    return rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err,
                             sizeof(err));
  };
  auto fail = [&](absl::Status status) {
    rd_kafka_conf_destroy(conf);
    return status;
  };

  // Defaults: durable (idempotent, acks=all: at-least-once without
  // duplicates from retries, in order per partition), compact and batched
  // for throughput, bounded by the queue flags.
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"bootstrap.servers", options.brokers},
      {"client.id", "execmon"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "10"},
      {"batch.num.messages", "10000"},
      {"batch.size", "1000000"},
      {"statistics.interval.ms", "1000"},
  };
  for (const auto& [key, value] : defaults) {
    if (set(key, value) != RD_KAFKA_CONF_OK) {
      return fail(absl::InternalError(
          absl::StrCat("kafka: setting default ", key, "=", value, ": ", err)));
    }
  }
  if (set("queue.buffering.max.messages",
          absl::StrCat(options.queue_max_events)) != RD_KAFKA_CONF_OK) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "--kafka_queue_max_events=", options.queue_max_events, ": ", err)));
  }
  if (set("queue.buffering.max.kbytes", absl::StrCat(kbytes)) !=
      RD_KAFKA_CONF_OK) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "--kafka_queue_max_bytes=", options.queue_max_bytes, ": ", err)));
  }
  if (set("message.timeout.ms", absl::StrCat(ClampMs(options.queue_max_age))) !=
      RD_KAFKA_CONF_OK) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "--kafka_queue_max_age=", absl::FormatDuration(options.queue_max_age),
        ": ", err)));
  }
  // lz4: the least CPU per event of the codecs that compress JSON well
  // (docs/kafka.md: zstd stores events in 2.4x less space for 11-22 %
  // more of the agent's CPU). librdkafka rejects a codec it lacks.
  std::string codec = "lz4";
  if (set("compression.codec", "lz4") != RD_KAFKA_CONF_OK) {
    LogDebug("kafka: lz4 unavailable (", err, "), not compressing");
    codec = "none";
  }
  for (const auto& [key, value] : options.properties) {
    if (set(key, value) != RD_KAFKA_CONF_OK) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("--kafka_property ", key, ": ", err)));
    }
    if (key == "compression.codec" || key == "compression.type") codec = value;
  }
  rd_kafka_conf_set_opaque(conf, sink.get());
  rd_kafka_conf_set_dr_msg_cb(conf, KafkaCallbacks::Delivery);
  rd_kafka_conf_set_error_cb(conf, KafkaCallbacks::Error);
  rd_kafka_conf_set_stats_cb(conf, KafkaCallbacks::Stats);
  rd_kafka_conf_set_log_cb(conf, LogCb);

  sink->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (sink->rk_ == nullptr) {
    return fail(absl::InvalidArgumentError(absl::StrCat("kafka: ", err)));
  }
  // rd_kafka_new owns conf from here on. With --kafka_topic_by_type the
  // topics are made as types appear (a topic handle makes the broker
  // auto-create the topic: no unused base topic).
  if (!options.topic_by_type) {
    sink->topic_ =
        rd_kafka_topic_new(sink->rk_, options.topic.c_str(), nullptr);
  }
  if (!options.topic_by_type && sink->topic_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kafka_topic=", options.topic, ": ",
                     rd_kafka_err2str(rd_kafka_last_error())));
  }
  LogInfo("kafka: producing to ", options.brokers, " topic ", options.topic,
          options.topic_by_type ? ".<type>" : "", ", key ",
          KeyName(options.key), ", compression ", codec, ", queue ",
          options.queue_max_events, " events / ", options.queue_max_bytes,
          " bytes / ", absl::FormatDuration(options.queue_max_age));
  sink->poller_ = std::thread([s = sink.get()] { s->PollLoop(); });
  return sink;
}

KafkaSink::~KafkaSink() {
  StopPolling();
  if (rk_ != nullptr && !closed_.load()) {
    // Not closed: whatever is queued is lost; still count it.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk_, 0);
    closed_.store(true);
    dropped_shutdown_.fetch_add(Outstanding());
    LogWarning("kafka: destroyed without Close(): ", CountersLine());
  }
  {
    absl::MutexLock lock(&topics_mu_);
    for (auto& [name, rkt] : typed_topics_) rd_kafka_topic_destroy(rkt);
    typed_topics_.clear();
  }
  if (topic_ != nullptr) rd_kafka_topic_destroy(topic_);
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

void KafkaSink::PollLoop() {
  // Not blocked inside rd_kafka_poll: that would win every delivery report
  // from Flush() (see there) and take a wake-up per report batch.
  do {
    rd_kafka_poll(rk_, 0);
  } while (!stop_polling_.WaitForNotificationWithTimeout(kPollEvery));
}

void KafkaSink::StopPolling() {
  if (!stop_polling_.HasBeenNotified()) stop_polling_.Notify();
  if (poller_.joinable()) poller_.join();
}

uint64_t KafkaSink::Outstanding() const {
  // Completions first: `produced` is incremented before a message can
  // complete, so this never underflows.
  uint64_t done = delivered_.load() + failed_.load() + dropped_timeout_.load() +
                  dropped_shutdown_.load();
  uint64_t produced = produced_.load();
  return produced > done ? produced - done : 0;
}

rd_kafka_topic_t* KafkaSink::TopicFor(absl::string_view type) {
  absl::MutexLock lock(&topics_mu_);
  auto it = typed_topics_.find(type);
  if (it != typed_topics_.end()) return it->second;
  // An event without a type (none is expected) goes to the base topic.
  std::string name =
      type.empty() ? options_.topic : absl::StrCat(options_.topic, ".", type);
  if (!ValidTopicName(name)) return nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
  if (rkt != nullptr) typed_topics_.emplace(std::string(type), rkt);
  return rkt;
}

void KafkaSink::CountDroppedOther(absl::string_view reason) {
  dropped_other_.fetch_add(1);
  uint64_t n;
  {
    absl::MutexLock lock(&reasons_mu_);
    n = ++reasons_.dropped_other[std::string(reason)];
  }
  absl::MutexLock lock(&state_mu_);
  absl::Time& last = error_logged_[absl::StrCat("drop:", reason)];
  if (absl::Now() - last >= kLogEvery) {
    last = absl::Now();
    LogWarning("kafka: cannot produce events (", reason, "): dropped ", n,
               " so far");
  }
}

absl::Status KafkaSink::Write(const EventMeta& meta, absl::string_view json) {
  if (closed_.load()) {
    CountDroppedOther("closed");
    return absl::OkStatus();
  }
  rd_kafka_topic_t* rkt = options_.topic_by_type ? TopicFor(meta.type) : topic_;
  if (rkt == nullptr) {
    CountDroppedOther("invalid_topic");
    return absl::OkStatus();
  }
  absl::string_view key;
  switch (options_.key) {
    case KafkaKey::kNode:
      key = meta.node;
      break;
    case KafkaKey::kPodUid:
      key = meta.pod_uid.empty() ? meta.node : meta.pod_uid;
      break;
    case KafkaKey::kNone:
      break;
  }
  // Counted before it can complete (a delivery report may be served by the
  // poller before producev returns); uncounted if it is not accepted.
  produced_.fetch_add(1);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(json.data()), json.size()),
      RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
      RD_KAFKA_V_HEADER("schema", schema_.data(),
                        static_cast<ssize_t>(schema_.size())),
      RD_KAFKA_V_HEADER("type", meta.type.data(),
                        static_cast<ssize_t>(meta.type.size())),
      RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  produced_.fetch_sub(1);
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    uint64_t n = dropped_queue_full_.fetch_add(1) + 1;
    absl::MutexLock lock(&state_mu_);
    absl::Time& last = error_logged_["queue_full"];
    if (absl::Now() - last >= kLogEvery) {
      last = absl::Now();
      LogWarning("kafka: producer queue full (--kafka_queue_max_events=",
                 options_.queue_max_events,
                 ", --kafka_queue_max_bytes=", options_.queue_max_bytes,
                 "): dropping events, ", n, " so far");
    }
    return absl::OkStatus();
  }
  CountDroppedOther(ReasonName(err));
  return absl::OkStatus();
}

absl::Status KafkaSink::Flush() {
  // Serves the delivery reports on the thread that produced the events
  // (the agent's, after each batch): librdkafka frees the delivered
  // messages here, where they were allocated, instead of on the poller
  // thread, whose frees contended with this thread's allocations.
  if (!closed_.load()) rd_kafka_poll(rk_, 0);
  return absl::OkStatus();
}

absl::Status KafkaSink::Close(absl::Duration deadline) {
  if (closed_.load()) return absl::OkStatus();
  StopPolling();  // from here on, this thread serves the callbacks
  const absl::Duration wait = std::max(
      absl::ZeroDuration(), std::min(deadline, options_.flush_timeout));
  const absl::Time start = absl::Now();
  rd_kafka_flush(rk_, ClampMs(wait));
  if (Outstanding() > 0) {
    // Give up on the rest: purged messages are reported as
    // _PURGE_QUEUE/_PURGE_INFLIGHT and counted as dropped_shutdown.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    const absl::Time until = absl::Now() + kPurgeReportWait;
    while (Outstanding() > 0 && absl::Now() < until) rd_kafka_poll(rk_, 10);
  }
  closed_.store(true);
  // Reports librdkafka never served (not expected) are dropped too.
  dropped_shutdown_.fetch_add(Outstanding());
  KafkaStats st = KafkaCounters();
  if (st.dropped_shutdown > 0) {
    LogWarning("kafka: ", st.dropped_shutdown,
               " events not delivered within the flush deadline (",
               absl::FormatDuration(wait), ") were dropped");
  }
  LogInfo(CountersLine(), " (closed in ",
          absl::ToInt64Milliseconds(absl::Now() - start), "ms)");
  return absl::OkStatus();
}

std::string KafkaSink::CountersLine() const {
  KafkaStats st = KafkaCounters();
  return absl::StrCat("kafka: produced=", st.produced,
                      " delivered=", st.delivered, " failed=", st.failed,
                      " dropped_queue_full=", st.dropped_queue_full,
                      " dropped_timeout=", st.dropped_timeout,
                      " dropped_shutdown=", st.dropped_shutdown,
                      " dropped_other=", st.dropped_other);
}

bool KafkaSink::Healthy() const { return brokers_up_.load() && !fatal_.load(); }

KafkaStats KafkaSink::KafkaCounters() const {
  KafkaStats st;
  // Completions before `produced` (see Outstanding()).
  st.delivered = delivered_.load();
  st.failed = failed_.load();
  st.dropped_timeout = dropped_timeout_.load();
  st.dropped_shutdown = dropped_shutdown_.load();
  st.produced = produced_.load();
  st.dropped_queue_full = dropped_queue_full_.load();
  st.dropped_other = dropped_other_.load();
  st.queue_depth =
      rk_ != nullptr
          ? static_cast<uint64_t>(std::max(0, rd_kafka_outq_len(rk_)))
          : 0;
  st.brokers_up = brokers_up_.load();
  return st;
}

KafkaReasons KafkaSink::Reasons() const {
  absl::MutexLock lock(&reasons_mu_);
  return reasons_;
}

SinkStats KafkaSink::Stats() const {
  KafkaStats st = KafkaCounters();
  SinkStats out;
  out.reports_delivery = true;
  out.queue_depth = st.queue_depth;
  out.delivered = st.delivered;
  out.failed = st.failed;
  out.dropped = {{"queue_full", st.dropped_queue_full},
                 {"timeout", st.dropped_timeout},
                 {"shutdown", st.dropped_shutdown}};
  absl::MutexLock lock(&reasons_mu_);
  for (const auto& [reason, n] : reasons_.dropped_other) {
    out.dropped.emplace_back(reason, n);
  }
  return out;
}

void KafkaSink::OnDelivery(int err) {
  if (closed_.load()) return;
  switch (static_cast<rd_kafka_resp_err_t>(err)) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      delivered_.fetch_add(1);
      SetBrokersUp(true, "an event was delivered");
      return;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: {
      uint64_t n = dropped_timeout_.fetch_add(1) + 1;
      absl::MutexLock lock(&state_mu_);
      absl::Time& last = error_logged_["timeout"];
      if (absl::Now() - last >= kLogEvery) {
        last = absl::Now();
        LogWarning("kafka: events not delivered within --kafka_queue_max_age=",
                   absl::FormatDuration(options_.queue_max_age),
                   " are dropped, ", n, " so far");
      }
      return;
    }
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
      dropped_shutdown_.fetch_add(1);
      return;
    default:
      break;
  }
  std::string reason = ReasonName(static_cast<rd_kafka_resp_err_t>(err));
  uint64_t n;
  {
    absl::MutexLock lock(&reasons_mu_);
    n = ++reasons_.failed[reason];
  }
  failed_.fetch_add(1);
  absl::MutexLock lock(&state_mu_);
  absl::Time& last = error_logged_[absl::StrCat("failed:", reason)];
  if (absl::Now() - last >= kLogEvery) {
    last = absl::Now();
    LogWarning("kafka: delivery failed: ",
               rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err)), " (",
               reason, "), ", n, " events so far");
  }
}

void KafkaSink::OnError(int err, const char* reason) {
  auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512] = {};
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk_, why, sizeof(why));
    if (!fatal_.exchange(true)) {
      LogError("kafka: fatal producer error, no more events can be sent: ",
               rd_kafka_err2name(orig), ": ", why);
    }
    return;
  }
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    SetBrokersUp(false, reason);
    return;
  }
  if (code == RD_KAFKA_RESP_ERR__TRANSPORT ||
      code == RD_KAFKA_RESP_ERR__RESOLVE) {
    // Per broker and per reconnect attempt; the state change is what is
    // logged (ALL_BROKERS_DOWN, statistics).
    LogDebug("kafka: ", reason);
    return;
  }
  absl::MutexLock lock(&state_mu_);
  absl::Time& last = error_logged_[absl::StrCat("error:", err)];
  if (absl::Now() - last >= kLogEvery) {
    last = absl::Now();
    LogWarning("kafka: ", rd_kafka_err2name(code), ": ", reason);
  }
}

void KafkaSink::OnStats(const char* json, size_t len) {
  rapidjson::Document doc;
  doc.Parse(json, len);
  if (doc.HasParseError() || !doc.IsObject()) return;
  auto brokers = doc.FindMember("brokers");
  if (brokers == doc.MemberEnd() || !brokers->value.IsObject()) return;
  int total = 0;
  int up = 0;
  for (const auto& b : brokers->value.GetObject()) {
    if (!b.value.IsObject()) continue;
    auto source = b.value.FindMember("source");
    auto state = b.value.FindMember("state");
    if (source == b.value.MemberEnd() || !source->value.IsString() ||
        state == b.value.MemberEnd() || !state->value.IsString()) {
      continue;
    }
    absl::string_view src(source->value.GetString(),
                          source->value.GetStringLength());
    if (src != "configured" && src != "learned") continue;  // internal
    ++total;
    if (absl::string_view(state->value.GetString(),
                          state->value.GetStringLength()) == "UP") {
      ++up;
    }
  }
  if (total == 0) return;
  if (up > 0) {
    SetBrokersUp(true, absl::StrCat(up, " of ", total, " connected"));
    return;
  }
  // Down only once known up: at start-up connecting takes a moment, and
  // librdkafka reports ALL_BROKERS_DOWN when every attempt failed.
  bool was_up;
  {
    absl::MutexLock lock(&state_mu_);
    was_up = brokers_state_ == 1;
  }
  if (was_up) SetBrokersUp(false, absl::StrCat("0 of ", total, " connected"));
}

void KafkaSink::SetBrokersUp(bool up, absl::string_view why) {
  // Every delivery report says "up": keep that path lock-free.
  if (up && brokers_up_.load()) return;
  absl::MutexLock lock(&state_mu_);
  const int next = up ? 1 : 0;
  if (brokers_state_ == next) return;
  const int prev = brokers_state_;
  brokers_state_ = next;
  brokers_up_.store(up);
  if (up) {
    uint64_t queued = Outstanding();
    LogInfo("kafka: brokers reachable (", why, ")",
            prev == 0 ? absl::StrCat("; delivering the ", queued,
                                     " events queued while they were down")
                      : "");
  } else {
    LogWarning("kafka: all brokers down (", why, "); queueing up to ",
               options_.queue_max_events, " events / ",
               options_.queue_max_bytes, " bytes for at most ",
               absl::FormatDuration(options_.queue_max_age),
               ", then dropping (counted)");
  }
}

}  // namespace execmon
