import os, matplotlib
matplotlib.use('Agg')
os.environ.setdefault('MPLBACKEND', 'Agg')
