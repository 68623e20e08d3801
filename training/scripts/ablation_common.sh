# What ablation.sh and ablation_eval.sh share (sourced): where the runs go, and the world both train and test on.
ROOT=${ABLATION_ROOT:-runs/ablation}
MIN_OBJECTS=1; MAX_OBJECTS=4; SCALE_LO=1.3; SCALE_HI=2.0
