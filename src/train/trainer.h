// The training loop: epochs of SGD steps over a BatchLoader, evaluation, per-epoch metrics,
// checkpoints through a callback, exact resume from a TrainState (also mid-epoch), and a clean
// stop on request (Ctrl-C), and optional distillation from a teacher model. Pruning plugs in
// through TrainHooks; the loop knows no patterns.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "core/model_file.h"
#include "data/batch_loader.h"
#include "train/hooks.h"
#include "train/net.h"
#include "train/optimizer.h"
#include "train/schedule.h"

namespace pconv {

// Knowledge distillation: the student also matches a fixed teacher's softened logits.
struct DistillConfig {
  std::string teacher;      // a model .h5 (same input and classes); empty = no distillation
  float alpha = 0.9f;       // weight of the distillation term; the label loss gets 1 - alpha
  float temperature = 4.f;  // softmax temperature of both sides
  std::string where;        // the config key it came from, for errors ("c.json: $.train...")
};

struct TrainLoopConfig {
  std::string stage = "pretrain";  // recorded in metrics and checkpoints
  int epochs = 1;
  int batch_size = 128;
  float label_smoothing = 0.f;
  SgdConfig sgd;
  ScheduleConfig schedule;
  int eval_every = 1;           // epochs between test-set evaluations (the last always evaluates)
  int max_steps_per_epoch = 0;  // 0 = whole epoch; else a cap (smoke runs)
  uint64_t seed = 0;            // data order and augmentation
  int loader_workers = 1;
  DistillConfig distill;
};

struct EvalResult {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t images = 0;
  double seconds = 0;
};
// Inference-mode pass over every batch of `loader` (one epoch, in order).
EvalResult evaluate(Net& net, data::BatchLoader& loader, const std::string& label = "eval");

struct TrainCallbacks {
  // After every epoch (record = that epoch's metrics) and on a requested stop (record = null).
  std::function<void(const TrainState& st, const nlohmann::json& record, bool best)> checkpoint;
  // Polled after every step; true ends the run after saving (Ctrl-C).
  std::function<bool()> stop_requested;
};

class Trainer {
 public:
  // `params` is trained in place; `hooks` may be null (dense training).
  Trainer(const Graph& g, ParamMap& params, const TrainLoopConfig& cfg, const data::Dataset& train,
          const data::Dataset& test, TrainHooks* hooks);
  ~Trainer();

  // Continues from `st` (a fresh TrainState starts at epoch 0) to cfg.epochs. Returns false when
  // stopped early through stop_requested (the state passed to the checkpoint callback resumes it).
  bool run(TrainState& st, const TrainCallbacks& cb);
  Net& net() { return *net_; }

 private:
  TrainState snapshot(const TrainState& st) const;
  void restore(const TrainState& st);

  const Graph& g_;
  ParamMap& params_;
  TrainLoopConfig cfg_;
  TrainHooks* hooks_;
  TrainHooks no_hooks_;
  std::unique_ptr<Net> net_;
  // The distillation teacher (inference only) and its weights, which the Net references.
  std::unique_ptr<ModelFile> teacher_model_;
  std::unique_ptr<Net> teacher_;
  Tensor dkd_;  // the distillation term's gradient, reused across steps
  Sgd sgd_;
  data::BatchLoader train_loader_, test_loader_;
};

}  // namespace pconv
