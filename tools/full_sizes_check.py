"""Does the `full` preset's sizing leave its floors reachable? Trains, on this machine, the pieces of `full` whose
accuracy gates the most claims, with the study's own code and recipes (seed 0, one run each):
  - the shared CNN teacher (`study_teacher('full', 'cnn')`; teacher floor 0.6),
  - kd_vit's ViT student alone and with soft KD from that teacher (its sizes; the reference floor 0.25),
  - small_data_vit's plain ViT (its sizes; the reference floor 0.5).
Accuracy does not depend on the device (up to its precision), so a CPU can check this before a GPU lease; on 2 CPU
cores it takes about an hour. Writes JSON to the path given (default full_sizes_check.json); set VITKD_CACHE to a
scratch folder to keep the teacher out of your study cache. Usage: python tools/full_sizes_check.py [OUT.json]"""
import json, os, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
from vitkd.distill import kd_method
from vitkd.study import SeedDLs, fit_eval, study_dls, study_model, study_teacher
from vitkd.study.presets import recipe, sizes
from vitkd.train import cpu_name, evaluate

out_path = Path(sys.argv[1] if len(sys.argv) > 1 else 'full_sizes_check.json')
out = {'cpu': cpu_name()}
def save():
    tmp = out_path.with_suffix('.tmp'); tmp.write_text(json.dumps(out, indent=1)); os.replace(tmp, out_path)

t = time.time(); cnn, cmeta = study_teacher('full', 'cnn')
S = sizes('kd_vit', 'full'); sdls = SeedDLs('full', bs=S['bs'], subset=S['subset'])
out['cnn'] = dict(valid_acc=cmeta['valid_acc'], test_acc=evaluate(cnn, sdls.test), seconds=round(time.time() - t), recipe=recipe('full', 'cnn'))
save(); print('cnn teacher', out['cnn'], flush=True)
for arm, cbs in [('alone', None), ('soft_kd', lambda: [kd_method('kd', cnn, alpha=0.5, T=4.)])]:  # as kd_vit's arms
    t = time.time()
    r = fit_eval(lambda: study_model('full', 'vit', sdls.c), sdls, S['epochs'], recipe('full')['lr'], 0, cbs=cbs, test_dl=sdls.test)
    out[f'kd_vit_{arm}'] = dict(test_acc=r['test_acc'], seconds=round(time.time() - t), images=sdls.train.n, epochs=S['epochs'])
    save(); print(f'kd_vit {arm}', out[f'kd_vit_{arm}'], flush=True)
S = sizes('small_data_vit', 'full'); (n, d), = S['sizes'].items()  # as small_data_vit's plain ViT
t = time.time()
r = fit_eval(lambda: study_model('full', 'vit', 10, **S['vit']), study_dls('full', bs=d['bs'], subset=n, seed=0), d['epochs'], recipe('full')['lr'], 0)
out['small_data_vit_alone'] = dict(test_acc=r['test_acc'], seconds=round(time.time() - t), epochs=d['epochs'], bs=d['bs'])
save(); print('small_data_vit ViT', out['small_data_vit_alone'], flush=True)
