#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/log.h"
#include "train/loss.h"
#include "train/progress.h"

namespace pconv {

using nlohmann::json;

namespace {

const std::string kMomentumPrefix = "optim/momentum/";

// Training batches are shuffled, augmented and whole; evaluation sees every image in order.
data::LoaderOptions loader_options(const TrainLoopConfig& c, bool train) {
  data::LoaderOptions o;
  o.batch_size = c.batch_size;
  o.shuffle = o.augment = o.drop_last = train;
  o.seed = c.seed;
  o.workers = c.loader_workers;
  return o;
}

std::string fmt(const char* f, double v) {
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

}  // namespace

EvalResult evaluate(Net& net, data::BatchLoader& loader, const std::string& label) {
  EvalResult r;
  double t0 = wall_seconds(), loss_sum = 0;
  int64_t c1 = 0, c5 = 0;
  data::Batch b;
  loader.start_epoch(0);
  Progress progress(label, loader.batches_per_epoch());
  int done = 0;
  while (loader.next(b)) {
    const Tensor& logits = net.forward(b.images, false);
    loss_sum += softmax_cross_entropy(logits, b.labels, 0.f, nullptr) * b.size();
    c1 += count_topk(logits, b.labels, 1);
    c5 += count_topk(logits, b.labels, std::min(5, static_cast<int>(logits.dim(1))));
    r.images += b.size();
    progress.update(++done, r.images, "");
  }
  PCONV_CHECK(r.images > 0, label, ": the data set is empty");
  r.loss = loss_sum / static_cast<double>(r.images);
  r.top1 = static_cast<double>(c1) / static_cast<double>(r.images);
  r.top5 = static_cast<double>(c5) / static_cast<double>(r.images);
  r.seconds = wall_seconds() - t0;
  return r;
}

Trainer::Trainer(const Graph& g, ParamMap& params, const TrainLoopConfig& cfg,
                 const data::Dataset& train, const data::Dataset& test, TrainHooks* hooks)
    : g_(g),
      params_(params),
      cfg_(cfg),
      hooks_(hooks ? hooks : &no_hooks_),
      net_(std::make_unique<Net>(g, params)),
      sgd_(g, cfg.sgd),
      train_loader_(train, loader_options(cfg, true)),
      test_loader_(test, loader_options(cfg, false)) {
  PCONV_CHECK(train.num_classes() == g.num_classes(), "the data set has ", train.num_classes(),
              " classes but the model outputs ", g.num_classes());
  PCONV_CHECK(Shape(train.sample_shape()) == g.input_shape(), "the data set's images are ",
              shape_str(train.sample_shape()), " but the model expects ",
              shape_str(g.input_shape()));
  if (!cfg.distill.teacher.empty()) {
    const std::string& path = cfg.distill.teacher;
    teacher_model_ = std::make_unique<ModelFile>(load_model(path));
    const Graph& tg = teacher_model_->graph;
    PCONV_CHECK(tg.input_shape() == g.input_shape(), "distillation teacher ", path, " takes ",
                shape_str(tg.input_shape()), " inputs but the model being trained takes ",
                shape_str(g.input_shape()));
    PCONV_CHECK(tg.num_classes() == g.num_classes(), "distillation teacher ", path, " has ",
                tg.num_classes(), " classes but the model being trained has ", g.num_classes());
    teacher_ = std::make_unique<Net>(tg, teacher_model_->params);
    log_info(cfg.stage, ": distilling from ", path, " (alpha ", cfg.distill.alpha, ", temperature ",
             cfg.distill.temperature, ")");
  }
}

Trainer::~Trainer() = default;

TrainState Trainer::snapshot(const TrainState& st) const {
  TrainState s = st;
  for (const auto& [key, t] : sgd_.momentum()) s.tensors[kMomentumPrefix + key] = t;
  hooks_->save_state(s);
  return s;
}

void Trainer::restore(const TrainState& st) {
  for (auto& [key, t] : sgd_.momentum()) {
    auto it = st.tensors.find(kMomentumPrefix + key);
    if (it == st.tensors.end()) continue;  // a fresh stage starts with zero momentum
    PCONV_CHECK(it->second.shape() == t.shape(), "checkpoint: momentum of ", key, " has shape ",
                shape_str(it->second.shape()), ", expected ", shape_str(t.shape()));
    t = it->second;
  }
  // Only a stage already under way has hook state to restore; a fresh stage initialises it.
  if (st.step > 0) hooks_->load_state(st);
}

bool Trainer::run(TrainState& st, const TrainCallbacks& cb) {
  st.stage = cfg_.stage;
  restore(st);
  int spe = train_loader_.batches_per_epoch();
  if (cfg_.max_steps_per_epoch > 0) spe = std::min(spe, cfg_.max_steps_per_epoch);
  LrSchedule schedule(cfg_.schedule, cfg_.sgd.lr, spe, cfg_.epochs);
  hooks_->on_stage_begin(params_);
  net_->params_changed();

  Tensor dlogits;
  data::Batch batch;
  for (int epoch = st.epoch; epoch < cfg_.epochs; ++epoch) {
    // Mid-epoch resume: continue at the saved batch with the saved running sums.
    int first = st.extra.value("batch_in_epoch", 0);
    json part = st.extra.value("epoch_partial", json::object());
    double loss_sum = part.value("loss_sum", 0.0), penalty_sum = part.value("penalty_sum", 0.0);
    int64_t correct = part.value("correct", int64_t{0}), seen = part.value("seen", int64_t{0});
    double seconds = part.value("seconds", 0.0);
    double t0 = wall_seconds();
    train_loader_.start_epoch(epoch, first);
    Progress progress(cat(cfg_.stage, " epoch ", epoch + 1, "/", cfg_.epochs), spe);
    int64_t seen_here = 0;
    double lr = 0;
    for (int b = first; b < spe && train_loader_.next(batch); ++b) {
      // The teacher sees the same augmented batch, in inference mode (its running BN statistics).
      // Its logits stay valid through the student's pass: each Net owns its buffers.
      const Tensor* teacher_logits = teacher_ ? &teacher_->forward(batch.images, false) : nullptr;
      const Tensor& logits = net_->forward(batch.images, true);
      float loss = softmax_cross_entropy(logits, batch.labels, cfg_.label_smoothing, &dlogits);
      if (teacher_logits) {
        const float a = cfg_.distill.alpha;
        const float kd = distillation_kl(logits, *teacher_logits, cfg_.distill.temperature, &dkd_);
        loss = (1 - a) * loss + a * kd;
        for (int64_t i = 0; i < dlogits.size(); ++i)
          dlogits[i] = (1 - a) * dlogits[i] + a * dkd_[i];
      }
      PCONV_CHECK(std::isfinite(loss), cfg_.stage, " epoch ", epoch + 1, " step ", st.step,
                  ": the loss is ", loss, " (diverged; lower the learning rate)");
      correct += count_top1(logits, batch.labels);
      net_->backward(dlogits);
      penalty_sum += hooks_->adjust_grads(params_, net_->grads()) * batch.size();
      lr = schedule.at(st.step);
      sgd_.step(params_, net_->grads(), lr);
      ++st.step;
      hooks_->after_step(st.step, params_, sgd_.momentum());
      net_->params_changed();
      loss_sum += static_cast<double>(loss) * batch.size();
      seen += batch.size();
      seen_here += batch.size();
      progress.update(
          b + 1, seen_here,
          cat("loss ", fmt("%.4f", loss_sum / seen), " acc ",
              fmt("%.4f", static_cast<double>(correct) / seen), " lr ", fmt("%.4g", lr)));
      if (cb.stop_requested && cb.stop_requested()) {
        st.extra["batch_in_epoch"] = b + 1;
        st.extra["epoch_partial"] = {{"loss_sum", loss_sum},
                                     {"penalty_sum", penalty_sum},
                                     {"correct", correct},
                                     {"seen", seen},
                                     {"seconds", seconds + wall_seconds() - t0}};
        if (cb.checkpoint) cb.checkpoint(snapshot(st), json(), false);
        return false;
      }
    }
    double train_s = seconds + wall_seconds() - t0;
    json rec{{"stage", cfg_.stage},
             {"epoch", epoch + 1},
             {"lr", lr},
             {"train_loss", seen ? loss_sum / seen : 0.0},
             {"train_top1", seen ? static_cast<double>(correct) / seen : 0.0},
             {"train_seconds", train_s},
             {"images_per_s", train_s > 0 ? seen / train_s : 0.0}};
    if (penalty_sum != 0) rec["penalty"] = penalty_sum / std::max<int64_t>(1, seen);
    progress.finish(cat("loss ", fmt("%.4f", rec["train_loss"].get<double>()), " acc ",
                        fmt("%.4f", rec["train_top1"].get<double>())));
    bool last = epoch + 1 == cfg_.epochs;
    bool best = false;
    if (last || (epoch + 1) % std::max(1, cfg_.eval_every) == 0) {
      EvalResult e = evaluate(*net_, test_loader_, "  test");
      rec["test_loss"] = e.loss;
      rec["test_top1"] = e.top1;
      rec["test_top5"] = e.top5;
      rec["eval_seconds"] = e.seconds;
      double prev = st.extra.value("best_top1", -1.0);
      best = e.top1 > prev;
      if (best) st.extra["best_top1"] = e.top1;
      log_info(cfg_.stage, " epoch ", epoch + 1, "/", cfg_.epochs, ": train loss ",
               fmt("%.4f", rec["train_loss"].get<double>()), " acc ",
               fmt("%.4f", rec["train_top1"].get<double>()), " | test loss ", fmt("%.4f", e.loss),
               " top1 ", fmt("%.4f", e.top1), " top5 ", fmt("%.4f", e.top5), " | ",
               format_duration(train_s), " (", fmt("%.0f", rec["images_per_s"].get<double>()),
               " img/s)");
    }
    hooks_->on_epoch_end(epoch, params_, rec);
    net_->params_changed();
    st.metrics.push_back(rec);
    st.epoch = epoch + 1;
    st.extra.erase("batch_in_epoch");
    st.extra.erase("epoch_partial");
    if (cb.checkpoint) cb.checkpoint(snapshot(st), rec, best);
  }
  return true;
}

}  // namespace pconv
