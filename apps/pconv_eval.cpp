// pconv-eval MODEL.h5: top-1 / top-5 accuracy of a model on a data set's test (or train) split.
#include <omp.h>

#include <cstdio>
#include <fstream>

#include "cli.h"
#include "core/json_reader.h"
#include "core/model_file.h"
#include "data/dataset.h"
#include "deploy/deployed_eval.h"
#include "pipeline/provenance.h"
#include "train/trainer.h"

namespace {
const char kUsage[] =
    "usage: pconv-eval MODEL.h5 [options]\n"
    "  --data cifar10|folder  data set kind (default cifar10)\n"
    "  --root DIR             data set root (default: auto for cifar10)\n"
    "  --split test|train     which split (default test)\n"
    "  --image-size N         input size for folder data sets (default: the model's)\n"
    "  --limit N              class-balanced subset of N images\n"
    "  --batch N              batch size (default 256)\n"
    "  --threads N            compute threads (default: every core)\n"
    "  --deployed DIR         also run the code pconv-deploy generated in DIR over the same\n"
    "                         images and report its accuracy and its agreement with the .h5\n"
    "  --export-inputs FILE   write the images, in order, as the float32 tensors the generated\n"
    "                         runner reads (runner weights.bin --batch --input FILE --output L)\n"
    "                         and stop: for a device this machine cannot run (phone, GPU)\n"
    "  --deployed-logits L    score the logits that runner wrote there against the .h5 on the\n"
    "                         same images (same --data/--split/--limit as the export)\n"
    "  --json FILE            also write the result as JSON\n";
}  // namespace

int main(int argc, char** argv) {
  using namespace pconv;
  set_command_line(command_line(argc, argv));
  try {
    std::string model, json_out, split = "test", deployed, export_inputs, deployed_logits;
    nlohmann::json dj = nlohmann::json::object();
    int batch = 256;
    cli::Args args(argc, argv, kUsage);
    while (args.next()) {
      if (args.is("--data")) {
        dj["dataset"] = args.value();
      } else if (args.is("--root")) {
        dj["root"] = args.value();
      } else if (args.is("--split")) {
        split = args.value();
        PCONV_CHECK(split == "test" || split == "train", "--split must be test or train");
      } else if (args.is("--image-size")) {
        dj["image_size"] = args.int_value(1);
      } else if (args.is("--limit")) {
        dj[split == "train" ? "train_limit" : "test_limit"] = args.int_value(1);
      } else if (args.is("--batch")) {
        batch = args.int_value(1);
      } else if (args.is("--threads")) {
        omp_set_num_threads(args.int_value(1));
      } else if (args.is("--deployed")) {
        deployed = args.value();
      } else if (args.is("--export-inputs")) {
        export_inputs = args.value();
      } else if (args.is("--deployed-logits")) {
        deployed_logits = args.value();
      } else if (args.is("--json")) {
        json_out = args.value();
      } else if (args.is_option()) {
        args.unknown();
      } else {
        PCONV_CHECK(model.empty(), "one model file only (got ", model, " and ", args.arg(), ")");
        model = args.arg();
      }
    }
    if (model.empty()) args.missing("the model file");
    PCONV_CHECK(
        int(!deployed.empty()) + int(!export_inputs.empty()) + int(!deployed_logits.empty()) <= 1,
        "--deployed, --export-inputs and --deployed-logits exclude each other");
    ModelFile m = load_model(model);
    if (!dj.contains("image_size")) dj["image_size"] = m.graph.input_shape()[1];
    JsonReader r(dj, "--data", "command line");
    data::DataConfig dc = data::parse_data_config(r);
    if (split == "train") dc.augment = false;
    auto ds = data::open_dataset(dc, split == "train" ? data::Split::Train : data::Split::Test);
    PCONV_CHECK(ds->num_classes() == m.graph.num_classes(), model, ": the model has ",
                m.graph.num_classes(), " outputs but the data set ", ds->num_classes(), " classes");
    Net net(m.graph, m.params);
    data::LoaderOptions lo;
    lo.batch_size = batch;
    lo.shuffle = lo.augment = lo.drop_last = false;
    data::BatchLoader loader(*ds, lo);
    nlohmann::json j{{"model", model},
                     {"dataset", dc.dataset},
                     {"split", split},
                     {"commit", git_commit()},
                     {"command", recorded_command_line()},
                     {"threads", omp_get_max_threads()}};
    if (!export_inputs.empty()) {
      const int64_t n = deploy::export_eval_inputs(loader, export_inputs);
      std::printf("%s: %lld images of %s (%lld floats each)\n", export_inputs.c_str(),
                  static_cast<long long>(n), ds->describe().c_str(),
                  static_cast<long long>(m.graph.input_shape()[0] * m.graph.input_shape()[1] *
                                         m.graph.input_shape()[2]));
      return 0;
    }
    if (deployed.empty() && deployed_logits.empty()) {
      EvalResult e = evaluate(net, loader, "eval");
      std::printf("%s on %s (%lld images): top1 %.4f  top5 %.4f  loss %.4f  (%.1fs, %.0f img/s)\n",
                  model.c_str(), ds->describe().c_str(), static_cast<long long>(e.images), e.top1,
                  e.top5, e.loss, e.seconds, e.images / e.seconds);
      j.update({{"images", e.images},
                {"test_top1", e.top1},
                {"test_top5", e.top5},
                {"loss", e.loss},
                {"seconds", e.seconds}});
    } else {
      deploy::DeployedEval d = deployed.empty()
                                   ? deploy::compare_deployed_logits(net, loader, deployed_logits)
                                   : deploy::evaluate_deployed(net, loader, deployed);
      std::printf(
          "%s (%lld images): .h5 top1 %.4f, deployed code top1 %.4f, same top-1 on %.4f of "
          "images, largest logit difference %.3g\n",
          model.c_str(), static_cast<long long>(d.images), d.model_top1, d.deployed_top1,
          d.agreement, d.max_logit_diff);
      j.update({{"images", d.images},
                {"test_top1", d.model_top1},
                {deployed.empty() ? "deployed_logits" : "deployed",
                 deployed.empty() ? deployed_logits : deployed},
                {"deployed_top1", d.deployed_top1},
                {"top1_agreement", d.agreement},
                {"max_logit_diff", d.max_logit_diff}});
    }
    if (!json_out.empty()) std::ofstream(json_out) << j.dump(2) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pconv-eval: error: %s\n", e.what());
    return 1;
  }
}
