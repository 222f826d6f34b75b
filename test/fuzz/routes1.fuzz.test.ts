import { describeRouteFuzz } from './everyRoute.js';

describeRouteFuzz(0, 2);
